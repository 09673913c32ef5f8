package policy

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/text/language"

	"github.com/herald-dev/herald/api/v1alpha1"

	// Embedded so time zones load the same on a distroless image as on a laptop.
	_ "time/tzdata"
)

var errLocal = errors.New(`"Local" is the server's zone, not a user's: name an IANA zone such as "Europe/Berlin"`)

// FieldError is a UserPreference field that admission (OpenAPI and CEL)
// cannot check. Reason is the condition reason for the UserPreference.
type FieldError struct {
	// Field is the JSON path, e.g. spec.timeZone.
	Field string
	// Reason is v1alpha1.ReasonInvalidTimeZone or v1alpha1.ReasonInvalidLocale.
	Reason string
	Value  string
	Err    error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: invalid value %q: %v", e.Field, e.Value, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// ValidatePreference checks what CEL cannot: that spec.timeZone names a zone
// in the tz database and spec.locale is a known BCP 47 tag. It returns nil or
// one *FieldError per bad field (joined); errors.As finds the first.
func ValidatePreference(spec *v1alpha1.UserPreferenceSpec) error {
	var errs []error
	if spec.TimeZone != "" {
		if _, err := loadLocation(spec.TimeZone); err != nil {
			errs = append(errs, &FieldError{Field: "spec.timeZone", Reason: v1alpha1.ReasonInvalidTimeZone, Value: spec.TimeZone, Err: err})
		}
	}
	if spec.Locale != "" {
		// Parse also rejects well-formed but unknown subtags ("xx"), which
		// would silently never match a template locale.
		if _, err := language.Parse(spec.Locale); err != nil {
			errs = append(errs, &FieldError{Field: "spec.locale", Reason: v1alpha1.ReasonInvalidLocale, Value: spec.Locale, Err: err})
		}
	}
	return errors.Join(errs...)
}

// Bounds a Notification must keep that admission cannot check.
const (
	// MaxParamsBytes bounds spec.params as JSON: it is rendered for every
	// recipient, and held while they are sent.
	MaxParamsBytes = 64 << 10
	// MaxSendAhead bounds spec.sendAt: a Notification is a message to
	// send, not a calendar.
	MaxSendAhead = 365 * 24 * time.Hour
)

// ValidateNotification checks what the CRD's schema and CEL cannot (CEL
// has no clock, no byte size of an object, and comparing every recipient
// with every other costs more than the API server allows a rule): params
// size, sendAt at most a year after creation, and no recipient named
// twice. The error names the field.
func ValidateNotification(spec *v1alpha1.NotificationSpec, created time.Time) error {
	if spec.Params != nil && len(spec.Params.Raw) > MaxParamsBytes {
		return fmt.Errorf("spec.params: %d bytes as JSON, more than the %d allowed", len(spec.Params.Raw), MaxParamsBytes)
	}
	if spec.SendAt != nil && spec.SendAt.Sub(created) > MaxSendAhead {
		return fmt.Errorf("spec.sendAt: %s is more than a year after the Notification was created", spec.SendAt.UTC().Format(time.RFC3339))
	}
	seen := make(map[string]int, len(spec.Recipients))
	for i, r := range spec.Recipients {
		key := "user\x00" + r.User + "\x00email\x00" + strings.ToLower(r.Email) + "\x00phone\x00" + r.Phone + "\x00webhook\x00" + r.Webhook
		if r.Device != nil {
			key += "\x00device\x00" + string(r.Device.Platform) + "\x00" + r.Device.Token
		}
		if j, ok := seen[key]; ok {
			return fmt.Errorf("spec.recipients[%d]: the same recipient as spec.recipients[%d]", i, j)
		}
		seen[key] = i
	}
	return nil
}
