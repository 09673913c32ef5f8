package inbound

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/receiver"
)

// ReceiverPath is a Receiver's path on the inbound server.
func ReceiverPath(namespace, name string) string {
	return "/receivers/namespaces/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
}

// ReceiverResult is what one request to a Receiver came to.
type ReceiverResult struct {
	// Created names the Notification made; "" when none was.
	Created string
	// Duplicate: the event was seen before (a sender's retry).
	Duplicate bool
	// Ignored says why the Receiver's filters dropped the event.
	Ignored string
	// Err is why the event could not be acted on.
	Err string
}

// Receivers serves the Receivers' path.
type Receivers struct {
	// Lookup returns a Receiver and its token; a missing one is ErrUnauthorized.
	Lookup func(ctx context.Context, namespace, name string) (*v1alpha1.Receiver, []byte, error)
	// Create creates a Notification; created is false when one of that
	// name exists already.
	Create func(ctx context.Context, n *v1alpha1.Notification) (name string, created bool, err error)
	// Record notes an authenticated request's result for the Receiver's status.
	Record func(namespace, name string, res ReceiverResult)
}

// Routes is the Receivers' route.
func (rs *Receivers) Routes() []Route {
	return []Route{{Pattern: "POST /receivers/namespaces/{namespace}/{name}", Source: "receiver",
		Limit:  func(r *http.Request) string { return r.PathValue("namespace") + "/" + r.PathValue("name") },
		Handle: rs.handle}}
}

// authenticate checks the request the way the Receiver's type sends it.
func authenticate(typ v1alpha1.ReceiverType, token []byte, r *Request) bool {
	switch typ {
	case v1alpha1.ReceiverGitHub:
		return VerifyHubSignature(token, r.Body, r.Header.Get("X-Hub-Signature-256"))
	case v1alpha1.ReceiverGitLab:
		return EqualToken(token, r.Header.Get("X-Gitlab-Token"))
	default:
		return EqualToken(token, BearerToken(r.Header.Get("Authorization")))
	}
}

func (rs *Receivers) handle(ctx context.Context, r *Request) (Response, error) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	rcv, token, err := rs.Lookup(ctx, ns, name)
	if err != nil {
		return Response{}, err
	}
	if !authenticate(rcv.Spec.Type, token, r) {
		return Response{}, ErrUnauthorized
	}
	// From here the caller is the Receiver's sender: it may learn what went wrong.
	res, err := rs.act(ctx, rcv, r)
	if err != nil {
		var inv *receiver.InvalidError
		if errors.As(err, &inv) {
			res.Err = inv.Reason
			rs.Record(ns, name, res)
			countReceiver(rcv.Spec.Type, "invalid")
			return Response{}, &BadRequest{Reason: inv.Reason}
		}
		res.Err = "creating the Notification: " + err.Error()
		rs.Record(ns, name, res)
		countReceiver(rcv.Spec.Type, "error")
		return Response{}, err
	}
	rs.Record(ns, name, res)
	text := "created " + res.Created
	switch {
	case res.Ignored != "":
		countReceiver(rcv.Spec.Type, "ignored")
		text = "ignored: " + res.Ignored
	case res.Duplicate:
		countReceiver(rcv.Spec.Type, "duplicate")
		text = "duplicate of " + res.Created
	default:
		countReceiver(rcv.Spec.Type, "created")
	}
	status := http.StatusOK
	if res.Created != "" && !res.Duplicate {
		status = http.StatusCreated
	}
	return Response{Status: status, ContentType: "text/plain; charset=utf-8", Body: []byte(strings.TrimSpace(text) + "\n")}, nil
}

func (rs *Receivers) act(ctx context.Context, rcv *v1alpha1.Receiver, r *Request) (ReceiverResult, error) {
	ev, err := receiver.Read(rcv.Spec.Type, r.Header.Get, r.Body)
	if err != nil {
		return ReceiverResult{}, err
	}
	if why := receiver.Ignored(&rcv.Spec, ev); why != "" {
		return ReceiverResult{Ignored: why}, nil
	}
	n, err := receiver.Build(rcv, ev)
	if err != nil {
		return ReceiverResult{}, &receiver.InvalidError{Reason: err.Error()}
	}
	created, isNew, err := rs.Create(ctx, n)
	if err != nil {
		return ReceiverResult{}, err
	}
	return ReceiverResult{Created: created, Duplicate: !isNew}, nil
}
