// Package admission checks, against a real API server, that the CRDs' OpenAPI
// schemas and CEL rules, and the admission policy, reject malformed objects
// with a message naming the field, and accept every sample.
package admission

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/herald-dev/herald/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// create submits obj with a server-side dry run, so cases do not interfere.
func create(t *testing.T, doc string) error {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatalf("bad test YAML: %v\n%s", err, doc)
	}
	if u.GetNamespace() == "" && u.GetKind() != "ClusterChannelProvider" {
		u.SetNamespace("default")
	}
	return env.Client.Create(context.Background(), u, client.DryRunAll)
}

const notif = "apiVersion: notify.herald.dev/v1alpha1\nkind: Notification\nmetadata: {name: obj}\n"
const chp = "apiVersion: notify.herald.dev/v1alpha1\nkind: ChannelProvider\nmetadata: {name: obj}\n"
const cchp = "apiVersion: notify.herald.dev/v1alpha1\nkind: ClusterChannelProvider\nmetadata: {name: obj}\n"
const tpl = "apiVersion: notify.herald.dev/v1alpha1\nkind: Template\nmetadata: {name: obj}\n"
const rcv = "apiVersion: notify.herald.dev/v1alpha1\nkind: Receiver\nmetadata: {name: obj}\n"
const upref = "apiVersion: notify.herald.dev/v1alpha1\nkind: UserPreference\nmetadata: {name: obj}\n"

// okContent is a valid inline content block.
const okContent = "  content: {sms: {text: hi}}\n"

func TestRejected(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		// want are substrings the error must contain: the field path and the rule.
		want []string
	}{
		// Notification
		{"neither templateRef nor content", notif + "spec:\n  recipients: [{email: a@b.co}]\n", []string{"spec", "exactly one of templateRef or content"}},
		{"both templateRef and content", notif + "spec:\n  templateRef: {name: t}\n" + okContent + "  recipients: [{email: a@b.co}]\n", []string{"spec", "exactly one of templateRef or content"}},
		{"no recipients", notif + "spec:\n" + okContent, []string{"spec", "recipients or recipientSelector"}},
		{"recipient with two kinds", notif + "spec:\n" + okContent + "  recipients: [{email: a@b.co, phone: '+14155550100'}]\n", []string{"spec.recipients[0]", "at most 1 item"}},
		{"empty recipient", notif + "spec:\n" + okContent + "  recipients: [{}]\n", []string{"spec.recipients[0]", "at least 1 properties"}},
		{"phone not E.164", notif + "spec:\n" + okContent + "  recipients: [{phone: '0415 555 0100'}]\n", []string{"spec.recipients[0].phone", "should match"}},
		{"email without domain", notif + "spec:\n" + okContent + "  recipients: [{email: alice}]\n", []string{"spec.recipients[0].email", "should match"}},
		{"unknown device platform", notif + "spec:\n" + okContent + "  recipients: [{device: {platform: blackberry, token: abc}}]\n", []string{"spec.recipients[0].device.platform", "Unsupported value"}},
		{"device without token", notif + "spec:\n" + okContent + "  recipients: [{device: {platform: ios}}]\n", []string{"spec.recipients[0].device.token", "Required"}},
		{"unknown channel", notif + "spec:\n" + okContent + "  recipients: [{email: a@b.co}]\n  channels: [fax]\n", []string{"spec.channels[0]", "Unsupported value"}},
		{"duplicate channel", notif + "spec:\n" + okContent + "  recipients: [{email: a@b.co}]\n  channels: [sms, sms]\n", []string{"spec.channels[1]", "Duplicate value"}},
		{"unknown priority", notif + "spec:\n" + okContent + "  recipients: [{email: a@b.co}]\n  priority: urgent\n", []string{"spec.priority", "Unsupported value"}},
		{"expiresAfter not a duration", notif + "spec:\n" + okContent + "  recipients: [{email: a@b.co}]\n  expiresAfter: tomorrow\n", []string{"spec.expiresAfter", "should match"}},
		{"expiresAfter too long", notif + "spec:\n" + okContent + "  recipients: [{email: a@b.co}]\n  expiresAfter: 1000h\n", []string{"spec.expiresAfter", "between 0s and 720h"}},
		{"sendAt with tiny expiresAfter", notif + "spec:\n" + okContent + "  recipients: [{email: a@b.co}]\n  sendAt: '2030-01-01T00:00:00Z'\n  expiresAfter: 10s\n", []string{"spec", "expiresAfter must be at least 1m when sendAt is set"}},
		{"sendAt not a time", notif + "spec:\n" + okContent + "  recipients: [{email: a@b.co}]\n  sendAt: next week\n", []string{"spec.sendAt"}},
		{"too many recipients", notif + "spec:\n" + okContent + "  recipients: [" + strings.Repeat("{email: a@b.co},", 1000) + "{email: a@b.co}]\n", []string{"spec.recipients", "must have at most 1000 items"}},
		{"negative ttl", notif + "spec:\n" + okContent + "  recipients: [{email: a@b.co}]\n  ttlSecondsAfterFinished: -1\n", []string{"spec.ttlSecondsAfterFinished", "greater than or equal to 0"}},
		{"bad provider override kind", notif + "spec:\n" + okContent + "  recipients: [{email: a@b.co}]\n  providers: {sms: {kind: Secret, name: x}}\n", []string{"spec.providers.sms.kind", "Unsupported value"}},
		{"params not an object", notif + "spec:\n" + okContent + "  recipients: [{email: a@b.co}]\n  params: [1, 2]\n", []string{"spec.params", "must be of type object"}},
		{"category with spaces", notif + "spec:\n" + okContent + "  recipients: [{email: a@b.co}]\n  category: Build Alerts\n", []string{"spec.category", "should match"}},
		{"empty inline content", notif + "spec:\n  content: {}\n  recipients: [{email: a@b.co}]\n", []string{"spec.content", "at least 1"}},
		{"email content without body", notif + "spec:\n  content: {email: {subject: s}}\n  recipients: [{email: a@b.co}]\n", []string{"spec.content.email", "email needs text or html"}},
		// Template
		{"template without channels", tpl + "spec: {category: build}\n", []string{"spec.channels", "Required"}},
		{"template email without subject", tpl + "spec:\n  channels: {email: {text: hi}}\n", []string{"spec.channels.email.subject", "Required"}},
		{"template push without body", tpl + "spec:\n  channels: {push: {title: hi}}\n", []string{"spec.channels.push.body", "Required"}},
		{"template webhook empty", tpl + "spec:\n  channels: {webhook: {}}\n", []string{"spec.channels.webhook", "webhook needs text, title or body"}},
		{"template negative badge", tpl + "spec:\n  channels: {push: {body: b, badge: -1}}\n", []string{"spec.channels.push.badge", "greater than or equal to 0"}},
		{"template push data value too long", tpl + "spec:\n  channels: {push: {body: b, data: {k: '" + strings.Repeat("d", 1025) + "'}}}\n", []string{"spec.channels.push.data", "at most 1024"}},
		// ChannelProvider
		{"unknown provider type", chp + "spec: {type: pigeon}\n", []string{"spec.type", "Unsupported value"}},
		{"apns without apns block", chp + "spec: {type: apns, secretRef: {name: s}}\n", []string{"spec", "apns must be set when type is apns"}},
		{"twilio with an fcm block", chp + "spec:\n  type: twilio\n  secretRef: {name: s}\n  twilio: {from: '+14155550100'}\n  fcm: {projectID: p}\n", []string{"spec", "fcm must be set when type is fcm, and only then"}},
		{"fcm without secretRef", chp + "spec: {type: fcm, fcm: {projectID: p}}\n", []string{"spec", "secretRef is required"}},
		{"twilio with from and service", chp + "spec:\n  type: twilio\n  secretRef: {name: s}\n  twilio: {from: '+14155550100', messagingServiceSID: MG0123456789abcdef0123456789abcdef}\n", []string{"spec.twilio", "exactly one of from or messagingServiceSID"}},
		{"apns teamID without keyID", chp + "spec:\n  type: apns\n  secretRef: {name: s}\n  apns: {teamID: ABCDE12345, topic: com.example.app}\n", []string{"spec.apns", "teamID and keyID go together"}},
		{"apns bad environment", chp + "spec:\n  type: apns\n  secretRef: {name: s}\n  apns: {topic: com.example.app, environment: staging}\n", []string{"spec.apns.environment", "Unsupported value"}},
		{"webhook without url or secret", chp + "spec: {type: webhook, webhook: {format: slack}}\n", []string{"spec", "webhook.url, or a secretRef"}},
		{"webhook bad format", chp + "spec: {type: webhook, webhook: {url: 'https://hooks.example.com/x', format: xml}}\n", []string{"spec.webhook.format", "Unsupported value"}},
		{"endpoint not a URL", chp + "spec: {type: log, log: {channel: sms}, endpoint: 'ftp://x'}\n", []string{"spec.endpoint", "should match"}},
		{"zero rate", chp + "spec: {type: log, log: {channel: sms}, rateLimit: {perSecond: 0}}\n", []string{"spec.rateLimit.perSecond", "greater than or equal to 1"}},
		{"zero concurrency", chp + "spec: {type: log, log: {channel: sms}, concurrency: 0}\n", []string{"spec.concurrency", "greater than or equal to 1"}},
		{"bad timeout", chp + "spec: {type: log, log: {channel: sms}, timeout: soon}\n", []string{"spec.timeout", "should match"}},
		{"timeout over a minute", chp + "spec: {type: log, log: {channel: sms}, timeout: 5m}\n", []string{"spec.timeout", "at most 60s"}},
		{"maxBackoff over an hour", chp + "spec: {type: log, log: {channel: sms}, retry: {maxBackoff: 2h}}\n", []string{"spec.retry.maxBackoff", "at most 1h"}},
		{"webhook header name not a token", chp + "spec: {type: webhook, webhook: {url: 'https://hooks.example.com/x', headers: {'Bad Header': v}}}\n", []string{"spec.webhook.headers", "HTTP tokens"}},
		{"webhook header value too long", chp + "spec: {type: webhook, webhook: {url: 'https://hooks.example.com/x', headers: {X-A: '" + strings.Repeat("v", 4097) + "'}}}\n", []string{"spec.webhook.headers", "at most 4096"}},
		{"smtp port out of range", chp + "spec: {type: smtp, smtp: {host: h, port: 70000, from: {email: a@b.co}}}\n", []string{"spec.smtp.port", "less than or equal to 65535"}},
		{"sendgrid bad from", chp + "spec: {type: sendgrid, secretRef: {name: s}, sendgrid: {from: {email: nobody}}}\n", []string{"spec.sendgrid.from.email", "should match"}},
		{"log without channel", chp + "spec: {type: log, log: {}}\n", []string{"spec.log.channel", "Required"}},
		{"cluster provider rule inherited", cchp + "spec: {type: sendgrid, sendgrid: {from: {email: a@b.co}}}\n", []string{"spec", "secretRef is required"}},
		// UserPreference
		{"user phone not E.164", upref + "spec: {phone: '555-0100'}\n", []string{"spec.phone", "should match"}},
		{"user bad email", upref + "spec: {email: 'a@b'}\n", []string{"spec.email", "should match"}},
		{"quiet hours out of range", upref + "spec: {quietHours: {start: '25:00', end: '07:00'}}\n", []string{"spec.quietHours.start", "should match"}},
		{"quiet hours empty window", upref + "spec: {quietHours: {start: '07:00', end: '07:00'}}\n", []string{"spec.quietHours", "start and end must differ"}},
		{"bad locale", upref + "spec: {locale: 'english please'}\n", []string{"spec.locale", "should match"}},
		{"optOut channel unknown", upref + "spec: {optOut: [{category: marketing, channels: [fax]}]}\n", []string{"spec.optOut[0].channels[0]", "Unsupported value"}},
		{"duplicate optOut category", upref + "spec: {optOut: [{category: marketing}, {category: marketing}]}\n", []string{"spec.optOut[1]", "Duplicate value"}},
		{"negative maxPerHour", upref + "spec: {maxPerHour: -5}\n", []string{"spec.maxPerHour", "greater than or equal to 0"}},
		{"device platform unknown", upref + "spec: {devices: [{platform: pager, token: t}]}\n", []string{"spec.devices[0].platform", "Unsupported value"}},
		// Receiver
		{"receiver type unknown", rcv + "spec: {type: jenkins, secretRef: {name: s}, templateRef: {name: t}, recipients: [{user: a}]}\n", []string{"spec.type", "Unsupported value"}},
		{"receiver without recipients", rcv + "spec: {type: generic, secretRef: {name: s}, templateRef: {name: t}}\n", []string{"spec", "recipients or recipientSelector"}},
		{"receiver events for alertmanager", rcv + "spec: {type: alertmanager, events: [push], secretRef: {name: s}, templateRef: {name: t}, recipients: [{user: a}]}\n", []string{"spec", "events applies to types github and gitlab"}},
		{"receiver without secretRef", rcv + "spec: {type: generic, templateRef: {name: t}, recipients: [{user: a}]}\n", []string{"spec.secretRef", "Required"}},
		// Provider receipts
		{"receipts on a log provider", chp + "spec: {type: log, log: {channel: push}, receipts: {}}\n", []string{"spec", "receipts is supported for types twilio and sendgrid"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := create(t, tc.doc)
			if err == nil {
				t.Fatalf("accepted; want rejection naming %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
}

func TestSamplesAccepted(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testenv.Root(), "config", "samples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs := utilyaml.NewYAMLReader(bufioReader(data))
		for i := 0; ; i++ {
			doc, err := docs.Read()
			if err != nil {
				break
			}
			if strings.TrimSpace(string(doc)) == "" {
				continue
			}
			t.Run(filepath.Base(f)+"#"+string(rune('0'+i)), func(t *testing.T) {
				if err := create(t, string(doc)); err != nil {
					t.Fatalf("sample rejected: %v", err)
				}
			})
		}
	}
}

// Recipients and the selector are fixed once a Notification exists: delivery
// ids follow recipient positions, so an edit would misattribute the log.
func TestRecipientsImmutable(t *testing.T) {
	ctx := context.Background()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(notif+"spec:\n"+okContent+"  recipients: [{email: a@b.co}]\n  recipientSelector: {matchLabels: {team: a}}\n"), &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetNamespace("default")
	u.SetName("immutable")
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field string
		value any
		want  string
	}{
		{"recipients", []any{map[string]any{"email": "c@d.co"}}, "spec.recipients: cannot change"},
		{"recipientSelector", map[string]any{"matchLabels": map[string]any{"team": "b"}}, "spec.recipientSelector: cannot change"},
		{"delivery", "AtMostOnce", "spec.delivery: cannot change"},
	} {
		v := u.DeepCopy()
		if err := unstructured.SetNestedField(v.Object, tc.value, "spec", tc.field); err != nil {
			t.Fatal(err)
		}
		err := env.Client.Update(ctx, v)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("changing spec.%s: got %v, want an error containing %q", tc.field, err, tc.want)
		}
	}
	// Params stay editable: that is how a Stalled render is fixed.
	v := u.DeepCopy()
	_ = unstructured.SetNestedField(v.Object, map[string]any{"x": "y"}, "spec", "params")
	if err := env.Client.Update(ctx, v); err != nil {
		t.Errorf("editing params: %v", err)
	}
}
