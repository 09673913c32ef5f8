package log

import (
	"strings"

	"github.com/herald-dev/herald/senders"
)

// mask shows enough of an address to recognise it in a log line.
func mask(a senders.Address) string {
	switch {
	case a.Email != "":
		return maskEmail(a.Email)
	case a.Phone != "":
		return maskPhone(a.Phone)
	case a.Device != nil:
		t := a.Device.Token
		if len(t) > 6 {
			t = t[:6] + "…"
		} else {
			t = "***"
		}
		return string(a.Device.Platform) + ":" + t
	}
	return ""
}

// maskEmail keeps the first letter and the domain: "a***@example.com".
func maskEmail(a string) string {
	i := strings.LastIndexByte(a, '@')
	if i <= 0 {
		return "***"
	}
	return a[:1] + "***" + a[i:]
}

// maskPhone keeps the country and area code and the last two digits: "+1415*****00".
func maskPhone(p string) string {
	if len(p) <= 7 {
		return strings.Repeat("*", len(p))
	}
	return p[:5] + strings.Repeat("*", len(p)-7) + p[len(p)-2:]
}
