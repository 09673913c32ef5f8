package inbound

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"testing"

	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"
	twclient "github.com/twilio/twilio-go/client"

	"github.com/herald-dev/herald/senders/sendgrid"
)

func TestTwilioSignatureAgreesWithTheSDK(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	u := "https://herald.example.com/providers/namespaces/team/twilio/status?m=abc&n=build-1&ns=team&uid=u1"
	form := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "To": {"+14155550100"}, "AccountSid": {"AC1"}}
	sig := TwilioSignature(token, u, form)
	flat := map[string]string{}
	for k := range form {
		flat[k] = form.Get(k)
	}
	v := twclient.NewRequestValidator(token)
	if !v.Validate(u, flat, sig) {
		t.Fatal("twilio-go's validator refuses our signature")
	}
	if !VerifyTwilio(token, []string{"https://other/", u}, form, sig) {
		t.Fatal("VerifyTwilio refuses a good signature")
	}
	for name, bad := range map[string]func() (string, []string, url.Values, string){
		"other token": func() (string, []string, url.Values, string) { return "ffff", []string{u}, form, sig },
		"other URL":   func() (string, []string, url.Values, string) { return token, []string{u + "x"}, form, sig },
		"changed param": func() (string, []string, url.Values, string) {
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			f.Set("MessageStatus", "failed")
			return token, []string{u}, f, sig
		},
		"no signature": func() (string, []string, url.Values, string) { return token, []string{u}, form, "" },
		"no token":     func() (string, []string, url.Values, string) { return "", []string{u}, form, sig },
	} {
		if VerifyTwilio(bad()) {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSendGridSignatureAgreesWithTheSDK(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	keyText := base64.StdEncoding.EncodeToString(der)
	body := []byte(`[{"event":"delivered"}]`)
	ts := "1764590400"
	h := sha256.Sum256(append([]byte(ts), body...))
	raw, err := ecdsa.SignASN1(rand.Reader, priv, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(raw)

	key, err := sendgrid.ParseVerificationKey(keyText)
	if err != nil {
		t.Fatal(err)
	}
	if !VerifySendGrid(key, ts, body, sig) {
		t.Fatal("a good signature is refused")
	}
	sdkKey, _ := eventwebhook.ConvertPublicKeyBase64ToECDSA(keyText)
	if ok, err := eventwebhook.VerifySignature(sdkKey, body, sig, ts); !ok || err != nil {
		t.Fatalf("sendgrid-go refuses the signature the test made: %v", err)
	}
	if VerifySendGrid(key, "1764590401", body, sig) {
		t.Error("another timestamp is accepted")
	}
	if VerifySendGrid(key, ts, []byte(`[{"event":"bounce"}]`), sig) {
		t.Error("another body is accepted")
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if VerifySendGrid(&other.PublicKey, ts, body, sig) {
		t.Error("another key verifies")
	}
	if _, err := sendgrid.ParseVerificationKey("not base64!"); err == nil {
		t.Error("garbage parses as a key")
	}
	pem := "-----BEGIN PUBLIC KEY-----\n" + keyText + "\n-----END PUBLIC KEY-----\n"
	if _, err := sendgrid.ParseVerificationKey(pem); err != nil {
		t.Errorf("PEM armour: %v", err)
	}
}

func TestVerifyHubSignature(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"action":"completed"}`)
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	good := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if !VerifyHubSignature(secret, body, good) {
		t.Fatal("good signature refused")
	}
	for _, h := range []string{"", "sha1=" + good[7:], good[:len(good)-2] + "00", "sha256=zz"} {
		if VerifyHubSignature(secret, body, h) {
			t.Errorf("%q accepted", h)
		}
	}
	if VerifyHubSignature(nil, body, good) {
		t.Error("an empty secret verifies")
	}
}
