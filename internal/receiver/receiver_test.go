package receiver

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// amBody is a version 4 webhook body with one alert per start time.
func amBody(status string, starts ...string) []byte {
	var alerts []string
	for i, s := range starts {
		alerts = append(alerts, `{"status":"`+status+`","labels":{"alertname":"DiskFull","instance":"node-`+string(rune('a'+i))+`"},
		 "annotations":{"summary":"disk full"},"startsAt":"`+s+`","endsAt":"0001-01-01T00:00:00Z",
		 "generatorURL":"http://prometheus/graph","fingerprint":"f`+string(rune('a'+i))+`"}`)
	}
	return []byte(`{"version":"4","groupKey":"{}:{alertname=\"DiskFull\"}","truncatedAlerts":0,"status":"` + status + `",
	 "receiver":"herald","groupLabels":{"alertname":"DiskFull"},"commonLabels":{"alertname":"DiskFull","severity":"page"},
	 "commonAnnotations":{"summary":"disk full"},"externalURL":"http://alertmanager:9093","alerts":[` + strings.Join(alerts, ",") + `]}`)
}

func TestAlertmanagerKeys(t *testing.T) {
	t1, t2 := "2026-12-01T10:00:00Z", "2026-12-01T10:05:00Z"
	firing, err := Alertmanager(amBody("firing", t1))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Alertmanager(amBody("firing", t1))
	resolved, _ := Alertmanager(amBody("resolved", t1))
	grown, _ := Alertmanager(amBody("firing", t1, t2))
	if firing.Key == "" || firing.Key != again.Key {
		t.Fatalf("the same group again has another key: %q %q", firing.Key, again.Key)
	}
	if resolved.Key == firing.Key || grown.Key == firing.Key {
		t.Fatal("resolved, or a new alert in the group, has the firing group's key")
	}
	if firing.Status != "firing" || resolved.Status != "resolved" {
		t.Fatalf("statuses %q %q", firing.Status, resolved.Status)
	}
	cl := firing.Params["commonLabels"].(map[string]any)
	if cl["alertname"] != "DiskFull" || firing.Params["externalURL"] != "http://alertmanager:9093" {
		t.Fatalf("params %v", firing.Params)
	}
	for _, bad := range []string{`[]`, `{"status":"firing"}`, `{"groupKey":"g","status":"weird"}`, `not json`} {
		var ie *InvalidError
		if _, err := Alertmanager([]byte(bad)); !errors.As(err, &ie) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func workflowRun(action, conclusion string, attempt int) []byte {
	b, _ := json.Marshal(map[string]any{"action": action,
		"workflow_run": map[string]any{"id": 12345678901, "name": "CI", "run_number": 42, "run_attempt": attempt, "status": "completed",
			"conclusion": conclusion, "head_branch": "main", "head_sha": "abc123", "html_url": "https://github.com/o/r/actions/runs/12345678901",
			"actor": map[string]any{"login": "octocat"}},
		"repository": map[string]any{"full_name": "o/r"}})
	return b
}

func TestGitHub(t *testing.T) {
	failed, err := GitHub("workflow_run", workflowRun("completed", "failure", 1))
	if err != nil {
		t.Fatal(err)
	}
	if failed.Status != "failure" || failed.Params["repository"] != "o/r" || failed.Params["workflow"] != "CI" || failed.Ignore != "" {
		t.Fatalf("event %+v", failed)
	}
	if id := failed.Params["payload"].(map[string]any)["workflow_run"].(map[string]any)["id"]; id.(json.Number).String() != "12345678901" {
		t.Fatalf("run id %v lost its digits", id)
	}
	rerun, _ := GitHub("workflow_run", workflowRun("completed", "failure", 2))
	same, _ := GitHub("workflow_run", workflowRun("completed", "failure", 1))
	if failed.Key != same.Key || failed.Key == rerun.Key {
		t.Fatal("a redelivery must share the key, a re-run attempt must not")
	}
	if started, _ := GitHub("workflow_run", workflowRun("requested", "", 1)); started.Ignore == "" {
		t.Fatal("a run that is not completed is acted on")
	}
	if ping, _ := GitHub("ping", []byte(`{"zen":"Keep it logically awesome."}`)); ping.Ignore == "" {
		t.Fatal("a ping is acted on")
	}
	if _, err := GitHub("", []byte(`{}`)); err == nil {
		t.Fatal("no event header is accepted")
	}
}

func TestGitLab(t *testing.T) {
	body := []byte(`{"object_kind":"pipeline","object_attributes":{"id":31,"iid":3,"ref":"main","sha":"bcbb5ec3","status":"failed","url":"https://gitlab.example.com/g/p/-/pipelines/31"},
	 "user":{"username":"root"},"project":{"id":7,"path_with_namespace":"g/p"}}`)
	ev, err := GitLab(body)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != "pipeline" || ev.Status != "failed" || ev.Params["project"] != "g/p" || ev.Key == "" {
		t.Fatalf("event %+v", ev)
	}
	if _, err := GitLab([]byte(`{"foo":1}`)); err == nil {
		t.Fatal("a payload without object_kind is accepted")
	}
}

func TestIgnored(t *testing.T) {
	gh := &v1alpha1.ReceiverSpec{Type: v1alpha1.ReceiverGitHub, Statuses: []string{"failure"}}
	for _, tc := range []struct {
		spec    *v1alpha1.ReceiverSpec
		ev      Event
		ignored bool
	}{
		{gh, Event{Kind: "workflow_run", Status: "failure"}, false},
		{gh, Event{Kind: "workflow_run", Status: "success"}, true},
		{gh, Event{Kind: "push", Status: "failure"}, true}, // default events: workflow_run
		{&v1alpha1.ReceiverSpec{Type: v1alpha1.ReceiverGitHub, Events: []string{"push"}}, Event{Kind: "push"}, false},
		{&v1alpha1.ReceiverSpec{Type: v1alpha1.ReceiverGitLab}, Event{Kind: "push"}, true},
		{&v1alpha1.ReceiverSpec{Type: v1alpha1.ReceiverAlertmanager, Statuses: []string{"firing"}}, Event{Kind: "alert", Status: "resolved"}, true},
		{&v1alpha1.ReceiverSpec{Type: v1alpha1.ReceiverAlertmanager}, Event{Kind: "alert", Status: "resolved"}, false},
		{&v1alpha1.ReceiverSpec{Type: v1alpha1.ReceiverGeneric}, Event{Kind: "generic", Ignore: "x"}, true},
	} {
		if got := Ignored(tc.spec, tc.ev) != ""; got != tc.ignored {
			t.Errorf("%+v %+v: ignored %v, want %v", tc.spec, tc.ev, got, tc.ignored)
		}
	}
}

func TestBuild(t *testing.T) {
	r := &v1alpha1.Receiver{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "ci"},
		Spec: v1alpha1.ReceiverSpec{Type: v1alpha1.ReceiverGeneric, TemplateRef: v1alpha1.LocalObjectReference{Name: "build"},
			Params:     &apiextensionsv1.JSON{Raw: []byte(`{"team":"a","build":"unknown"}`)},
			Recipients: []v1alpha1.Recipient{{User: "alice"}}, Priority: v1alpha1.PriorityHigh}}
	ev, err := Generic([]byte(`{"build":"1234","metadata":{"namespace":"team-b"},"namespace":"team-b"}`), "k1")
	if err != nil {
		t.Fatal(err)
	}
	n, err := Build(r, ev)
	if err != nil {
		t.Fatal(err)
	}
	if n.Namespace != "team-a" || n.Labels[v1alpha1.LabelReceiver] != "ci" || n.Spec.TemplateRef.Name != "build" || n.Spec.Priority != v1alpha1.PriorityHigh {
		t.Fatalf("notification %+v", n.ObjectMeta)
	}
	var params map[string]any
	_ = json.Unmarshal(n.Spec.Params.Raw, &params)
	if params["build"] != "1234" || params["team"] != "a" {
		t.Fatalf("params %v: the event's must win over the Receiver's defaults", params)
	}
	again, _ := Build(r, ev)
	if n.Name == "" || n.Name != again.Name || n.Spec.IdempotencyKey == "" || len(n.Spec.IdempotencyKey) > 253 {
		t.Fatalf("names %q %q key %q", n.Name, again.Name, n.Spec.IdempotencyKey)
	}
	other := r.DeepCopy()
	other.Name = "cd"
	if o, _ := Build(other, ev); strings.TrimPrefix(o.Name, "cd-") == strings.TrimPrefix(n.Name, "ci-") {
		t.Fatal("two Receivers share a key")
	}
	noKey, _ := Generic([]byte(`{}`), "")
	if nk, _ := Build(r, noKey); nk.Name != "" || nk.GenerateName != "ci-" || nk.Spec.IdempotencyKey != "" {
		t.Fatalf("without a key: %q %q %q", nk.Name, nk.GenerateName, nk.Spec.IdempotencyKey)
	}
	long := r.DeepCopy()
	long.Name = strings.Repeat("x", 253)
	if ln, _ := Build(long, ev); len(ln.Name) > 253 {
		t.Fatalf("name of %d characters", len(ln.Name))
	}
}
