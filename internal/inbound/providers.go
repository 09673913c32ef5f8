package inbound

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"k8s.io/utils/clock"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/receipt"
	"github.com/herald-dev/herald/senders/sendgrid"
	"github.com/herald-dev/herald/senders/twilio"
)

// Provider hooks: the last element of a provider's inbound path.
const (
	HookStatus   = "status"   // Twilio status callbacks
	HookMessages = "messages" // Twilio inbound messages (STOP/START)
	HookEvents   = "events"   // SendGrid Event Webhook
)

// ProviderPath is a provider's inbound path for hook; namespace "" is a
// ClusterChannelProvider.
func ProviderPath(namespace, name, hook string) string {
	if namespace == "" {
		return "/providers/cluster/" + url.PathEscape(name) + "/" + hook
	}
	return "/providers/namespaces/" + url.PathEscape(namespace) + "/" + url.PathEscape(name) + "/" + hook
}

// ProviderInfo is what a provider's hooks need from the cluster.
type ProviderInfo struct {
	Type   v1alpha1.ProviderType
	Secret map[string][]byte
	// PublicURL is the provider's own spec.receipts.publicURL, if any:
	// Twilio signs the URL it was given.
	PublicURL string
}

// Providers serves the providers' hooks.
type Providers struct {
	// Lookup returns a provider and its Secret's data; namespace "" is a
	// ClusterChannelProvider. A missing one is ErrUnauthorized.
	Lookup func(ctx context.Context, namespace, name string) (ProviderInfo, error)
	// Receipts takes verified receipts; it only buffers.
	Receipts func([]receipt.Receipt)
	// Keyword records a STOP or START from phone, for the users of
	// namespace ("" : every namespace, for a ClusterChannelProvider).
	Keyword func(ctx context.Context, namespace, phone string, k receipt.Keyword) error
	Clock   clock.PassiveClock
}

// Routes are the providers' hooks, namespaced and cluster-wide.
func (p *Providers) Routes() []Route {
	limit := func(r *http.Request) string { return r.PathValue("namespace") + "/" + r.PathValue("name") }
	var rs []Route
	for _, prefix := range []string{"/providers/namespaces/{namespace}/{name}/", "/providers/cluster/{name}/"} {
		rs = append(rs,
			Route{Pattern: "POST " + prefix + HookStatus, Source: "twilio", Limit: limit, Handle: p.twilioStatus},
			Route{Pattern: "POST " + prefix + HookMessages, Source: "twilio", Limit: limit, Handle: p.twilioMessages},
			Route{Pattern: "POST " + prefix + HookEvents, Source: "sendgrid", Limit: limit, Handle: p.sendgridEvents})
	}
	return rs
}

// provider looks up the provider a request names and checks its type.
func (p *Providers) provider(r *Request, typ v1alpha1.ProviderType) (ns, via string, info ProviderInfo, err error) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	info, err = p.Lookup(r.Context(), ns, name)
	if err != nil {
		return "", "", ProviderInfo{}, err
	}
	if info.Type != typ {
		return "", "", ProviderInfo{}, ErrUnauthorized
	}
	via = "ChannelProvider/" + name
	if ns == "" {
		via = "ClusterChannelProvider/" + name
	}
	return ns, via, info, nil
}

// twilio looks up the Twilio provider a request names, verifies the
// request's signature with its auth token and returns the form.
func (p *Providers) twilio(r *Request) (ns, via string, form url.Values, err error) {
	ns, via, info, err := p.provider(r, v1alpha1.ProviderTwilio)
	if err != nil {
		return "", "", nil, err
	}
	form, err = url.ParseQuery(string(r.Body))
	if err != nil {
		return "", "", nil, ErrUnauthorized
	}
	token := strings.TrimSpace(string(info.Secret[twilio.KeyAuthToken]))
	urls := r.SignedURLs
	if info.PublicURL != "" {
		urls = append(SignedURLs(info.PublicURL, r.Request), urls...)
	}
	if !VerifyTwilio(token, urls, form, r.Header.Get("X-Twilio-Signature")) {
		return "", "", nil, ErrUnauthorized
	}
	return ns, via, form, nil
}

func (p *Providers) twilioStatus(_ context.Context, r *Request) (Response, error) {
	ns, via, form, err := p.twilio(r)
	if err != nil {
		return Response{}, err
	}
	rc, ok := receipt.FromTwilioStatus(r.URL.Query(), form, p.Clock.Now())
	if !ok || (ns != "" && rc.Notification.Namespace != ns) {
		// Signed, but not about a message Herald sent through this provider
		// (a namespaced provider only answers for its own namespace).
		CountReceipt("twilio", "unmatched")
		return Response{Status: http.StatusNoContent}, nil
	}
	if rc.State == "" && rc.Learn == "" {
		CountReceipt("twilio", "progress")
		return Response{Status: http.StatusNoContent}, nil
	}
	rc.Via = via
	p.Receipts([]receipt.Receipt{rc})
	return Response{Status: http.StatusNoContent}, nil
}

// emptyTwiML answers an inbound message with no reply: Twilio itself
// answers STOP and START with the carrier-mandated text.
const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

func (p *Providers) twilioMessages(ctx context.Context, r *Request) (Response, error) {
	ns, _, form, err := p.twilio(r)
	if err != nil {
		return Response{}, err
	}
	res := Response{ContentType: "text/xml", Body: []byte(emptyTwiML)}
	from, k := receipt.FromTwilioInbound(form)
	switch {
	case k == receipt.NoKeyword || from == "":
		CountReceipt("twilio", "inbound_other")
		return res, nil
	case k == receipt.OptOut:
		CountReceipt("twilio", "opt_out")
	default:
		CountReceipt("twilio", "opt_in")
	}
	if err := p.Keyword(ctx, ns, from, k); err != nil {
		return Response{}, err // 503: Twilio retries
	}
	return res, nil
}

func (p *Providers) sendgridEvents(_ context.Context, r *Request) (Response, error) {
	ns, via, info, err := p.provider(r, v1alpha1.ProviderSendGrid)
	if err != nil {
		return Response{}, err
	}
	key, err := sendgrid.ParseVerificationKey(string(info.Secret[sendgrid.KeyWebhookVerificationKey]))
	if err != nil {
		return Response{}, ErrUnauthorized
	}
	if !VerifySendGrid(key, r.Header.Get("X-Twilio-Email-Event-Webhook-Timestamp"), r.Body, r.Header.Get("X-Twilio-Email-Event-Webhook-Signature")) {
		return Response{}, ErrUnauthorized
	}
	evs, err := receipt.ParseSendGrid(r.Body)
	if err != nil {
		return Response{}, &BadRequest{Reason: "the body is not a JSON array of events"}
	}
	now := p.Clock.Now()
	var rs []receipt.Receipt
	for _, ev := range evs {
		rc, ok := receipt.FromSendGrid(ev, now)
		switch {
		case !ok || (ns != "" && rc.Notification.Namespace != ns):
			CountReceipt("sendgrid", "unmatched")
		case rc.State == "" && rc.Learn == "":
			CountReceipt("sendgrid", "progress")
		default:
			rc.Via = via
			rs = append(rs, rc)
		}
	}
	if len(rs) > 0 {
		p.Receipts(rs)
	}
	return Response{Status: http.StatusOK}, nil
}
