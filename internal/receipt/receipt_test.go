package receipt

import (
	"net/url"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func TestApply(t *testing.T) {
	sent := metav1.NewTime(now.Add(-time.Minute))
	delivered := Receipt{State: v1alpha1.DeliveryDelivered, Time: now, ProviderMessageID: "SM1"}
	failed := Receipt{State: v1alpha1.DeliveryFailed, Reason: "Twilio30003", Message: "unreachable", Time: now}
	bounce := Receipt{State: v1alpha1.DeliveryFailed, Reason: v1alpha1.ReasonBounced, Time: now}
	spam := Receipt{Learn: v1alpha1.ReasonSpamReport, Time: now}
	for _, tc := range []struct {
		name      string
		d         v1alpha1.Delivery
		r         Receipt
		want      Result
		wantState v1alpha1.DeliveryState
		wantReas  string
	}{
		{"sent→delivered", v1alpha1.Delivery{State: v1alpha1.DeliverySent, SentTime: &sent, ProviderMessageID: "SM1"}, delivered, Applied, v1alpha1.DeliveryDelivered, ""},
		{"sent→failed", v1alpha1.Delivery{State: v1alpha1.DeliverySent, SentTime: &sent}, failed, Applied, v1alpha1.DeliveryFailed, "Twilio30003"},
		{"delivered again", v1alpha1.Delivery{State: v1alpha1.DeliveryDelivered}, delivered, Duplicate, v1alpha1.DeliveryDelivered, ""},
		{"late undelivered after delivered", v1alpha1.Delivery{State: v1alpha1.DeliveryDelivered}, failed, Duplicate, v1alpha1.DeliveryDelivered, ""},
		{"bounce after delivered", v1alpha1.Delivery{State: v1alpha1.DeliveryDelivered}, bounce, Applied, v1alpha1.DeliveryFailed, v1alpha1.ReasonBounced},
		{"delivered after failed", v1alpha1.Delivery{State: v1alpha1.DeliveryFailed, Reason: "Twilio30003"}, delivered, Duplicate, v1alpha1.DeliveryFailed, "Twilio30003"},
		{"spam report changes no state", v1alpha1.Delivery{State: v1alpha1.DeliveryDelivered}, spam, Duplicate, v1alpha1.DeliveryDelivered, ""},
		{"not sent yet", v1alpha1.Delivery{State: v1alpha1.DeliverySending}, delivered, NotYet, v1alpha1.DeliverySending, ""},
		{"retrying", v1alpha1.Delivery{State: v1alpha1.DeliveryRetrying}, delivered, NotYet, v1alpha1.DeliveryRetrying, ""},
		{"suppressed", v1alpha1.Delivery{State: v1alpha1.DeliverySuppressed}, delivered, Duplicate, v1alpha1.DeliverySuppressed, ""},
		{"other message", v1alpha1.Delivery{State: v1alpha1.DeliverySent, ProviderMessageID: "SM2"}, delivered, Mismatch, v1alpha1.DeliverySent, ""},
		{"sendgrid id extended", v1alpha1.Delivery{State: v1alpha1.DeliverySent, ProviderMessageID: "abc"},
			Receipt{State: v1alpha1.DeliveryDelivered, ProviderMessageID: "abc.filterdrecv-1.2", Time: now}, Applied, v1alpha1.DeliveryDelivered, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.d
			if got := Apply(&d, tc.r); got != tc.want {
				t.Fatalf("Apply = %v, want %v", got, tc.want)
			}
			if d.State != tc.wantState || d.Reason != tc.wantReas {
				t.Fatalf("delivery is %s/%s, want %s/%s", d.State, d.Reason, tc.wantState, tc.wantReas)
			}
			if tc.want == Applied && d.State == v1alpha1.DeliveryDelivered && (d.DeliveredTime == nil || !d.DeliveredTime.Time.Equal(now)) {
				t.Fatalf("deliveredTime %v, want %v", d.DeliveredTime, now)
			}
		})
	}
}

func TestFromTwilioStatus(t *testing.T) {
	q := CallbackQuery("team", "build-1", "u-1", "m-1")
	for _, tc := range []struct {
		form      url.Values
		state     v1alpha1.DeliveryState
		reason    string
		learn     string
		wantEvent string
	}{
		{url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}}, v1alpha1.DeliveryDelivered, "", "", "delivered"},
		{url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"undelivered"}, "ErrorCode": {"30003"}}, v1alpha1.DeliveryFailed, "Twilio30003", "", "undelivered"},
		{url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"failed"}}, v1alpha1.DeliveryFailed, v1alpha1.ReasonUndelivered, "", "failed"},
		{url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"failed"}, "ErrorCode": {"21610"}}, v1alpha1.DeliveryFailed, "Twilio21610", v1alpha1.ReasonUnsubscribed, "failed"},
		{url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"undelivered"}, "ErrorCode": {"<script>"}}, v1alpha1.DeliveryFailed, v1alpha1.ReasonUndelivered, "", "undelivered"},
		{url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"sent"}}, "", "", "", "other"},
	} {
		r, ok := FromTwilioStatus(q, tc.form, now)
		if !ok || r.State != tc.state || r.Reason != tc.reason || r.Learn != tc.learn || r.Event != tc.wantEvent {
			t.Errorf("%v: got ok=%v %+v", tc.form, ok, r)
		}
		if r.Notification.Namespace != "team" || r.Notification.Name != "build-1" || r.MessageID != "m-1" || r.UID != "u-1" {
			t.Errorf("%v: names %+v", tc.form, r)
		}
	}
	if _, ok := FromTwilioStatus(url.Values{}, url.Values{"MessageStatus": {"delivered"}}, now); ok {
		t.Error("a callback without Herald's query names a delivery")
	}
}

func TestFromTwilioInbound(t *testing.T) {
	for body, want := range map[string]Keyword{
		"STOP": OptOut, " stop ": OptOut, "Unsubscribe": OptOut, "cancel": OptOut, "END": OptOut, "quit": OptOut, "stopall": OptOut,
		"START": OptIn, "yes": OptIn, "Unstop": OptIn,
		"please stop": NoKeyword, "HELP": NoKeyword, "": NoKeyword, "STOPPED": NoKeyword,
	} {
		from, k := FromTwilioInbound(url.Values{"From": {"+14155550100"}, "Body": {body}})
		if k != want || from != "+14155550100" {
			t.Errorf("%q: %v %q, want %v", body, k, from, want)
		}
	}
	if _, k := FromTwilioInbound(url.Values{"Body": {"arrête"}, "OptOutType": {"STOP"}}); k != OptOut {
		t.Error("OptOutType STOP (Advanced Opt-Out) is not an opt-out")
	}
}

func TestFromSendGrid(t *testing.T) {
	evs, err := ParseSendGrid([]byte(`[
	 {"email":"a@example.com","timestamp":1764590400,"event":"delivered","sg_message_id":"x.1","herald_message_id":"m1","herald_notification":"team/n1","herald_notification_uid":"u1"},
	 {"email":"a@example.com","event":"bounce","type":"bounce","reason":"550 no such user","herald_message_id":"m1","herald_notification":"team/n1"},
	 {"email":"a@example.com","event":"bounce","type":"blocked","reason":"spam content","herald_message_id":"m1","herald_notification":"team/n1"},
	 {"email":"a@example.com","event":"dropped","reason":"Bounced Address","herald_message_id":"m1","herald_notification":"team/n1"},
	 {"email":"a@example.com","event":"spamreport","herald_message_id":"m1","herald_notification":"team/n1"},
	 {"email":"a@example.com","event":"group_unsubscribe","herald_message_id":"m1","herald_notification":"team/n1"},
	 {"email":"a@example.com","event":"open","herald_message_id":"m1","herald_notification":"team/n1"},
	 {"email":"b@example.com","event":"delivered"}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		ok     bool
		state  v1alpha1.DeliveryState
		reason string
		learn  string
	}{
		{true, v1alpha1.DeliveryDelivered, "", ""},
		{true, v1alpha1.DeliveryFailed, v1alpha1.ReasonBounced, v1alpha1.ReasonBounced},
		{true, v1alpha1.DeliveryFailed, "Blocked", ""},
		{true, v1alpha1.DeliveryFailed, v1alpha1.ReasonDropped, ""},
		{true, "", "", v1alpha1.ReasonSpamReport},
		{true, "", "", v1alpha1.ReasonUnsubscribed},
		{true, "", "", ""},
		{false, "", "", ""},
	}
	for i, ev := range evs {
		r, ok := FromSendGrid(ev, now)
		w := want[i]
		if ok != w.ok || r.State != w.state || r.Reason != w.reason || r.Learn != w.learn {
			t.Errorf("event %d (%s): ok=%v %s/%s learn %q, want %+v", i, ev.Event, ok, r.State, r.Reason, r.Learn, w)
		}
	}
	if r, _ := FromSendGrid(evs[0], now); r.Notification.Name != "n1" || r.Notification.Namespace != "team" || !r.Time.Equal(time.Unix(1764590400, 0)) || r.UID != "u1" {
		t.Errorf("first event: %+v", r)
	}
}
