package cli

import (
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// Exit codes: a pipeline step tells the outcomes apart without parsing text.
const (
	// ExitOK: Sent or Suppressed (a duplicate, or nobody wanted it), or a
	// command that only reads succeeded.
	ExitOK = 0
	// ExitFailed: the Notification ended Failed, PartiallySent or Expired;
	// or the command could not do its work (API server unreachable, not found).
	ExitFailed = 1
	// ExitInvalid: the request was refused: a bad flag, or the API server
	// rejected the object (its message names the field), or forbidden.
	ExitInvalid = 2
	// ExitTimeout: --timeout passed before the Notification finished.
	ExitTimeout = 3
)

// exitError carries an exit code with the message to print.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

func invalidf(format string, args ...any) error {
	return withCode(ExitInvalid, fmt.Errorf(format, args...))
}

// ExitCode is the process exit status for what a command returned.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		return ExitInvalid
	}
	return ExitFailed
}

// Outcome is the exit code a finished phase stands for: Sent and
// Suppressed succeed, PartiallySent succeeds only when allowPartial, the
// rest fail.
func Outcome(phase v1alpha1.NotificationPhase, allowPartial bool) int {
	switch {
	case phase.Ready():
		return ExitOK
	case phase == v1alpha1.PhasePartiallySent && allowPartial:
		return ExitOK
	}
	return ExitFailed
}
