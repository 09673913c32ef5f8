package controller_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/herald-dev/herald/api/v1alpha1"
	fakesendgrid "github.com/herald-dev/herald/senders/fake/sendgrid"
)

// listUnsubscribe returns the List-Unsubscribe URL of the last mail to
// addr, and whether List-Unsubscribe-Post asks for one click.
func listUnsubscribe(t *testing.T, srv *fakesendgrid.Server, addr string) (string, bool) {
	t.Helper()
	for _, r := range slices.Backward(srv.Accepted()) {
		if len(r.Mail.Personalizations) > 0 && r.Mail.Personalizations[0].To[0].Email == addr {
			u := strings.Trim(r.Mail.Headers["List-Unsubscribe"], "<>")
			return u, r.Mail.Headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
		}
	}
	t.Fatalf("no mail to %s", addr)
	return "", false
}

func TestOneClickUnsubscribe(t *testing.T) {
	ns := namespace(t, "unsubscribe")
	srv := sendgridFake(t, ns, nil)
	user(t, ns, "hana", v1alpha1.UserPreferenceSpec{Email: "hana@example.org"}, nil)
	user(t, ns, "ivan", v1alpha1.UserPreferenceSpec{Email: "ivan@example.org"}, nil)
	send := func(name, to, category string, prio v1alpha1.Priority) *v1alpha1.Notification {
		n := emailNotif(ns, name, v1alpha1.Recipient{User: to})
		n.Spec.Category, n.Spec.Priority = category, prio
		create(t, n)
		return n
	}

	send("news-1", "hana", "newsletter", "")
	waitDelivery(t, ns, "news-1", v1alpha1.DeliverySent, "")
	link, oneClick := listUnsubscribe(t, srv, "hana@example.org")
	if !strings.HasPrefix(link, "http://"+inboundAddr+"/unsubscribe/") || !oneClick {
		t.Fatalf("List-Unsubscribe %q, one-click %v", link, oneClick)
	}
	send("urgent", "hana", "newsletter", v1alpha1.PriorityCritical)
	waitDelivery(t, ns, "urgent", v1alpha1.DeliverySent, "")
	if l, _ := listUnsubscribe(t, srv, "hana@example.org"); l != "" {
		t.Fatalf("a critical email offers unsubscribing: %q", l)
	}

	// A GET (a mail scanner following links) changes nothing.
	if res, err := http.Get(link); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET: %v %v", res, err)
	}
	var hana v1alpha1.UserPreference
	if err := env.Client.Get(ctxT(), key(ns, "hana"), &hana); err != nil || len(hana.Status.OptedOut) != 0 {
		t.Fatalf("a GET opted out: %+v %v", hana.Status.OptedOut, err)
	}
	// The link turned to another user is refused.
	token := strings.TrimPrefix(link, "http://"+inboundAddr+"/unsubscribe/")
	p64, sig, _ := strings.Cut(token, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(p64)
	forged := "http://" + inboundAddr + "/unsubscribe/" + base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte("hana"), []byte("ivan"), 1)) + "." + sig
	oneClickBody := strings.NewReader("List-Unsubscribe=One-Click")
	if res, err := http.Post(forged, "application/x-www-form-urlencoded", oneClickBody); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged link: %v %v", res, err)
	}
	if res, err := http.Post(link, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click")); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("POST: %v %v", res, err)
	}
	for name, want := range map[string]int{"hana": 1, "ivan": 0} {
		var u v1alpha1.UserPreference
		if err := env.Client.Get(ctxT(), key(ns, name), &u); err != nil {
			t.Fatal(err)
		}
		if len(u.Status.OptedOut) != want || (want == 1 && u.Status.OptedOut[0].Category != "newsletter") {
			t.Fatalf("%s: optedOut %+v", name, u.Status.OptedOut)
		}
	}
	// Honoured: the category is suppressed, others are not.
	send("news-2", "hana", "newsletter", "")
	waitDelivery(t, ns, "news-2", v1alpha1.DeliverySuppressed, v1alpha1.ReasonOptedOut)
	send("other", "hana", "billing", "")
	waitDelivery(t, ns, "other", v1alpha1.DeliverySent, "")
}
