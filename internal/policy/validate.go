package policy

import (
	"errors"
	"fmt"

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
