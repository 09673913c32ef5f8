package inbound

import (
	"context"
	"html"
	"time"

	"github.com/herald-dev/herald/internal/unsubscribe"
)

// Unsubscribe serves one-click unsubscribe links (RFC 8058). A POST opts
// the user out; a GET (a person who opened the link, or a mail filter
// that follows every link) only shows a button that POSTs, so scanning a
// mail never unsubscribes anyone.
type Unsubscribe struct {
	Signer *unsubscribe.Signer
	Now    func() time.Time
	// OptOut records the opt-out on the user's status.
	OptOut func(ctx context.Context, c unsubscribe.Claims) error
}

// Routes are the links' routes.
func (u *Unsubscribe) Routes() []Route {
	return []Route{
		{Pattern: "POST " + unsubscribe.PathPrefix + "{token}", Source: "unsubscribe", Handle: u.post},
		{Pattern: "GET " + unsubscribe.PathPrefix + "{token}", Source: "unsubscribe", Handle: u.get},
	}
}

func (u *Unsubscribe) claims(r *Request) (unsubscribe.Claims, error) {
	c, err := u.Signer.Verify(r.PathValue("token"), u.Now())
	if err != nil {
		return unsubscribe.Claims{}, ErrUnauthorized
	}
	return c, nil
}

func (u *Unsubscribe) post(ctx context.Context, r *Request) (Response, error) {
	c, err := u.claims(r)
	if err != nil {
		return Response{}, err
	}
	if err := u.OptOut(ctx, c); err != nil {
		return Response{}, err
	}
	return page("You are unsubscribed", "You will no longer receive "+c.Category+" messages."), nil
}

func (u *Unsubscribe) get(_ context.Context, r *Request) (Response, error) {
	c, err := u.claims(r)
	if err != nil {
		return Response{}, err
	}
	res := page("Unsubscribe", "Stop receiving "+c.Category+" messages?")
	res.Body = append(res.Body, []byte(`<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>`)...)
	return res, nil
}

func page(title, text string) Response {
	return Response{ContentType: "text/html; charset=utf-8", Body: []byte("<!doctype html><title>" + html.EscapeString(title) +
		"</title><p>" + html.EscapeString(text) + "</p>")}
}
