package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// runIDs are the environment variables that identify a pipeline run, in the
// order they are tried: HERALD_RUN_ID first (set it where the CI system has
// no variable of its own, e.g. a Tekton Task passes
// $(context.pipelineRun.name)), then the CI systems'. A re-run of a failed
// step keeps the run id, so it keeps the key; GitHub's GITHUB_RUN_ATTEMPT
// is left out on purpose.
var runIDs = []struct{ system, env string }{
	{"herald", "HERALD_RUN_ID"},
	{"github", "GITHUB_RUN_ID"},
	{"gitlab", "CI_PIPELINE_ID"},
	{"buildkite", "BUILDKITE_BUILD_ID"},
	{"jenkins", "BUILD_TAG"},
}

// CIKey is the idempotency key a pipeline step gets when it names none:
// the CI system and its run id, plus a digest of what is sent, so one run
// may send several different alerts but a retried step sends each once.
// It is empty outside CI (getenv finds no run id).
func CIKey(getenv func(string) string, spec *v1alpha1.NotificationSpec) string {
	for _, r := range runIDs {
		id := getenv(r.env)
		if id == "" {
			continue
		}
		s := *spec
		s.IdempotencyKey = ""
		b, _ := json.Marshal(s) // a spec always marshals
		sum := sha256.Sum256(b)
		key := r.system + "-" + keyUnsafe.ReplaceAllString(id, "-")
		const max = 253 - 1 - 12
		if len(key) > max {
			key = key[:max]
		}
		return strings.ToLower(key) + "-" + hex.EncodeToString(sum[:6])
	}
	return ""
}

var keyUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
