package controller_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// receiverFixture creates a Template, a token Secret and a Receiver of typ
// in ns, waits for it to be Ready and returns it.
func receiverFixture(t *testing.T, ns, name string, typ v1alpha1.ReceiverType, token string, mod func(*v1alpha1.ReceiverSpec)) *v1alpha1.Receiver {
	t.Helper()
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-token"}, Data: map[string][]byte{"token": []byte(token)}})
	spec := v1alpha1.ReceiverSpec{Type: typ, SecretRef: v1alpha1.LocalObjectReference{Name: name + "-token"},
		TemplateRef: v1alpha1.LocalObjectReference{Name: "event"}, Recipients: []v1alpha1.Recipient{{Email: "oncall@example.com"}},
		Channels: []v1alpha1.Channel{v1alpha1.ChannelEmail}}
	if mod != nil {
		mod(&spec)
	}
	r := &v1alpha1.Receiver{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	create(t, r)
	waitCondition(t, r, func() []metav1.Condition { return r.Status.Conditions }, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReceiving)
	if want := "/receivers/namespaces/" + ns + "/" + name; r.Status.WebhookPath != want || r.Status.URL != "http://"+inboundAddr+want {
		t.Fatalf("status shows path %q url %q", r.Status.WebhookPath, r.Status.URL)
	}
	return r
}

func eventTemplate(t *testing.T, ns string) {
	t.Helper()
	create(t, &v1alpha1.Template{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "event"}, Spec: v1alpha1.TemplateSpec{
		Channels: v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "{{ .Params.status }}", Text: "{{ .Params.status }}"}}}})
}

func postTo(t *testing.T, url string, header map[string]string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func receiverNotifications(t *testing.T, ns, receiver string) []v1alpha1.Notification {
	t.Helper()
	var list v1alpha1.NotificationList
	if err := env.Client.List(ctxT(), &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelReceiver: receiver}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func TestAlertmanagerReceiver(t *testing.T) {
	ns := namespace(t, "receiver-am")
	other := namespace(t, "receiver-am-other")
	logProviders(t, ns)
	eventTemplate(t, ns)
	r := receiverFixture(t, ns, "alerts", v1alpha1.ReceiverAlertmanager, "am-token", nil)
	receiverFixture(t, other, "alerts", v1alpha1.ReceiverAlertmanager, "other-token", nil)
	firing, err := os.ReadFile("testdata/alertmanager-firing.json")
	if err != nil {
		t.Fatal(err)
	}
	resolved := bytes.ReplaceAll(firing, []byte(`"firing"`), []byte(`"resolved"`))
	auth := map[string]string{"Authorization": "Bearer am-token"}

	for i, step := range []struct {
		body []byte
		want int
	}{{firing, http.StatusCreated}, {firing, http.StatusOK}, {resolved, http.StatusCreated}} {
		if code, text := postTo(t, r.Status.URL, auth, step.body); code != step.want {
			t.Fatalf("post %d: %d %q, want %d", i, code, text, step.want)
		}
	}
	// Refused alike: no token, a wrong one, the token of another
	// namespace's Receiver, a Receiver that does not exist.
	for _, tc := range []struct {
		url  string
		auth map[string]string
	}{
		{r.Status.URL, nil},
		{r.Status.URL, map[string]string{"Authorization": "Bearer other-token"}},
		{strings.Replace(r.Status.URL, ns, other, 1), auth},
		{strings.Replace(r.Status.URL, "/alerts", "/nope", 1), auth},
	} {
		if code, _ := postTo(t, tc.url, tc.auth, firing); code != http.StatusUnauthorized {
			t.Errorf("%s %v: %d, want 401", tc.url, tc.auth, code)
		}
	}
	if code, _ := postTo(t, r.Status.URL, auth, bytes.Repeat([]byte(" "), 2<<20)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", code)
	}

	got := receiverNotifications(t, ns, "alerts")
	if len(got) != 2 {
		t.Fatalf("%d Notifications, want 2 (firing, resolved)", len(got))
	}
	statuses := map[string]bool{}
	for _, n := range got {
		var p map[string]any
		if err := json.Unmarshal(n.Spec.Params.Raw, &p); err != nil {
			t.Fatal(err)
		}
		statuses[p["status"].(string)] = true
		if p["commonLabels"].(map[string]any)["alertname"] != "DiskFull" || n.Spec.IdempotencyKey == "" || n.Spec.TemplateRef.Name != "event" {
			t.Errorf("notification %s: params %v key %q", n.Name, p, n.Spec.IdempotencyKey)
		}
	}
	if !statuses["firing"] || !statuses["resolved"] {
		t.Fatalf("statuses %v", statuses)
	}
	// The payload names namespace team-b in a label: nothing goes anywhere but the Receiver's namespace.
	if n := receiverNotifications(t, other, "alerts"); len(n) != 0 {
		t.Fatalf("%d Notifications in the other namespace", len(n))
	}
	for _, n := range got {
		waitFinished(t, ns, n.Name, v1alpha1.PhaseSent)
	}
	eventually(t, func() error {
		if err := env.Client.Get(ctxT(), key(ns, "alerts"), r); err != nil {
			return err
		}
		if r.Status.EventsReceived != 3 || r.Status.NotificationsCreated != 2 || r.Status.LastEventTime == nil || r.Status.LastNotification == "" {
			return errf("status %+v", r.Status)
		}
		return nil
	})
}

func hubSignature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func workflowRunEvent(conclusion string) []byte {
	b, _ := json.Marshal(map[string]any{"action": "completed",
		"workflow_run": map[string]any{"id": 30433642, "name": "Build", "run_number": 562, "run_attempt": 1, "status": "completed",
			"conclusion": conclusion, "head_branch": "main", "head_sha": "acb5820ced9479c074f688cc328bf03f341a511d",
			"html_url": "https://github.com/octo-org/octo-repo/actions/runs/30433642", "actor": map[string]any{"login": "octocat"}},
		"repository": map[string]any{"full_name": "octo-org/octo-repo"}})
	return b
}

func TestGitHubReceiver(t *testing.T) {
	ns := namespace(t, "receiver-gh")
	logProviders(t, ns)
	eventTemplate(t, ns)
	const secret = "gh-webhook-secret"
	r := receiverFixture(t, ns, "ci", v1alpha1.ReceiverGitHub, secret, func(s *v1alpha1.ReceiverSpec) { s.Statuses = []string{"failure"} })
	failed, ok := workflowRunEvent("failure"), workflowRunEvent("success")
	gh := func(event string, body []byte, sig string) int {
		code, _ := postTo(t, r.Status.URL, map[string]string{"X-GitHub-Event": event, "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958", "X-Hub-Signature-256": sig}, body)
		return code
	}
	if code := gh("workflow_run", failed, hubSignature("not-the-secret", failed)); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d", code)
	}
	if code := gh("workflow_run", ok, hubSignature(secret, failed)); code != http.StatusUnauthorized {
		t.Fatalf("signature of another body: %d", code)
	}
	if n := receiverNotifications(t, ns, "ci"); len(n) != 0 {
		t.Fatalf("refused requests created %d Notifications", len(n))
	}
	if code := gh("ping", []byte(`{"zen":"Design for failure."}`), hubSignature(secret, []byte(`{"zen":"Design for failure."}`))); code != http.StatusOK {
		t.Fatalf("ping: %d", code)
	}
	if code := gh("workflow_run", ok, hubSignature(secret, ok)); code != http.StatusOK {
		t.Fatalf("a successful run (filtered out): %d", code)
	}
	if code := gh("workflow_run", failed, hubSignature(secret, failed)); code != http.StatusCreated {
		t.Fatalf("a failed run: %d", code)
	}
	got := receiverNotifications(t, ns, "ci")
	if len(got) != 1 {
		t.Fatalf("%d Notifications, want 1", len(got))
	}
	var p map[string]any
	_ = json.Unmarshal(got[0].Spec.Params.Raw, &p)
	if p["conclusion"] != "failure" || p["repository"] != "octo-org/octo-repo" || p["workflow"] != "Build" {
		t.Fatalf("params %v", p)
	}
}

func TestGenericReceiver(t *testing.T) {
	ns := namespace(t, "receiver-generic")
	logProviders(t, ns)
	eventTemplate(t, ns)
	r := receiverFixture(t, ns, "deploys", v1alpha1.ReceiverGeneric, "generic-token", nil)
	auth := map[string]string{"Authorization": "Bearer generic-token"}
	if code, text := postTo(t, r.Status.URL, auth, []byte(`["not", "an", "object"]`)); code != http.StatusBadRequest || !strings.Contains(text, "JSON object") {
		t.Fatalf("array body: %d %q", code, text)
	}
	code, text := postTo(t, r.Status.URL, auth, []byte(`{"status":"deployed","service":"api"}`))
	if code != http.StatusCreated {
		t.Fatalf("object body: %d %q", code, text)
	}
	name := strings.TrimSpace(strings.TrimPrefix(text, "created "))
	n := waitFinished(t, ns, name, v1alpha1.PhaseSent)
	if !strings.Contains(string(n.Spec.Params.Raw), `"service":"api"`) {
		t.Fatalf("params %s", n.Spec.Params.Raw)
	}
	eventually(t, func() error {
		if err := env.Client.Get(ctxT(), key(ns, "deploys"), r); err != nil {
			return err
		}
		if r.Status.EventsReceived != 2 || r.Status.NotificationsCreated != 1 || !strings.Contains(r.Status.LastError, "JSON object") {
			return errf("status %+v", r.Status)
		}
		return nil
	})
}

func TestGitLabReceiver(t *testing.T) {
	ns := namespace(t, "receiver-gl")
	logProviders(t, ns)
	eventTemplate(t, ns)
	r := receiverFixture(t, ns, "pipelines", v1alpha1.ReceiverGitLab, "gl-secret-token", func(s *v1alpha1.ReceiverSpec) { s.Statuses = []string{"failed"} })
	pipeline := func(status string) []byte {
		return []byte(`{"object_kind":"pipeline","object_attributes":{"id":31,"ref":"main","sha":"bcbb5ec3","status":"` + status + `",
		 "url":"https://gitlab.example.com/g/p/-/pipelines/31"},"user":{"username":"root"},"project":{"id":7,"path_with_namespace":"g/p"}}`)
	}
	hdr := func(tok string) map[string]string {
		return map[string]string{"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": tok}
	}
	for _, step := range []struct {
		token, status string
		want          int
	}{
		{"wrong", "failed", http.StatusUnauthorized},
		{"gl-secret-token", "running", http.StatusOK}, // filtered out
		{"gl-secret-token", "failed", http.StatusCreated},
		{"gl-secret-token", "failed", http.StatusOK}, // GitLab's retry
	} {
		if code, text := postTo(t, r.Status.URL, hdr(step.token), pipeline(step.status)); code != step.want {
			t.Fatalf("%s/%s: %d %q, want %d", step.token, step.status, code, text, step.want)
		}
	}
	if n := receiverNotifications(t, ns, "pipelines"); len(n) != 1 || !strings.Contains(string(n[0].Spec.Params.Raw), `"project":"g/p"`) {
		t.Fatalf("notifications %d", len(n))
	}
}
