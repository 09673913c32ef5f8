package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sample is one line of Prometheus text exposition.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Metrics is a scrape.
type Metrics []Sample

// ParseMetrics reads the Prometheus text format, enough of it for counters,
// gauges and histogram series (comments skipped, label values unescaped).
func ParseMetrics(b []byte) Metrics {
	var out Metrics
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		s := Sample{Labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			s.Name = line[:i]
			parseLabels(line[i+1:j], s.Labels)
			rest = strings.TrimSpace(line[j+1:])
		} else {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			s.Name, rest = f[0], f[1]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		s.Value = v
		out = append(out, s)
	}
	return out
}

func parseLabels(s string, into map[string]string) {
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return
		}
		name := strings.TrimSpace(strings.TrimPrefix(s[:eq], ","))
		var val strings.Builder
		i := eq + 2
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[i])
				}
				continue
			}
			val.WriteByte(s[i])
		}
		into[name] = val.String()
		s = strings.TrimPrefix(s[min(i+1, len(s)):], ",")
	}
}

// Sum adds the values of the series called name whose labels match every
// entry of want; a want value may list alternatives separated by "|".
func (m Metrics) Sum(name string, want map[string]string) float64 {
	total := 0.0
	for _, s := range m {
		if s.Name != name || !matches(s.Labels, want) {
			continue
		}
		total += s.Value
	}
	return total
}

func matches(have, want map[string]string) bool {
	for k, alts := range want {
		ok := false
		for _, a := range strings.Split(alts, "|") {
			ok = ok || have[k] == a
		}
		if !ok {
			return false
		}
	}
	return true
}

// StatusWrites is the number of writes (PATCH or PUT) of Notification status
// the API server has served, read from apiserver_request_total.
func StatusWrites(m Metrics) float64 {
	return m.Sum("apiserver_request_total", map[string]string{"resource": "notifications", "subresource": "status", "verb": "PATCH|PUT|APPLY"})
}

// NotificationWrites is every write request on Notifications, status included.
func NotificationWrites(m Metrics) float64 {
	return m.Sum("apiserver_request_total", map[string]string{"resource": "notifications", "verb": "POST|PATCH|PUT|APPLY|DELETE"})
}

// WritesAfterCreate is every write on Notifications but their create, plus
// every Event written: what the manager spends on each notification.
func WritesAfterCreate(m Metrics) float64 {
	return m.Sum("apiserver_request_total", map[string]string{"resource": "notifications", "verb": "PATCH|PUT|APPLY|DELETE"}) +
		m.Sum("apiserver_request_total", map[string]string{"resource": "events", "verb": "POST|PATCH|PUT|APPLY"})
}

func httpGet(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, truncate(string(b), 200))
	}
	return b, nil
}

// Scrape fetches a plain-HTTP /metrics endpoint (the manager's, etcd's).
func Scrape(ctx context.Context, url string) (Metrics, error) {
	b, err := httpGet(ctx, http.DefaultClient, url)
	if err != nil {
		return nil, err
	}
	return ParseMetrics(b), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// EtcdStatus is what etcd's maintenance API says about its database.
type EtcdStatus struct {
	Revision    int64
	DBSize      int64
	DBSizeInUse int64
}

// EtcdCompact compacts etcd's history up to its current revision, as the API
// server does every five minutes, so DBSizeInUse then counts live data only.
// It talks to etcd's JSON gateway on the client URL.
func EtcdCompact(ctx context.Context, etcdURL string) (EtcdStatus, error) {
	st, err := etcdStatus(ctx, etcdURL)
	if err != nil {
		return st, err
	}
	body := fmt.Sprintf(`{"revision": "%d", "physical": true}`, st.Revision)
	if err := etcdPost(ctx, etcdURL, "/v3/kv/compaction", body, nil); err != nil {
		// Compacting to the revision already compacted is fine.
		if !strings.Contains(err.Error(), "compacted") {
			return st, err
		}
	}
	return etcdStatus(ctx, etcdURL)
}

func etcdStatus(ctx context.Context, etcdURL string) (EtcdStatus, error) {
	var r struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
		DBSize      string `json:"dbSize"`
		DBSizeInUse string `json:"dbSizeInUse"`
	}
	if err := etcdPost(ctx, etcdURL, "/v3/maintenance/status", `{}`, &r); err != nil {
		return EtcdStatus{}, err
	}
	var st EtcdStatus
	st.Revision, _ = strconv.ParseInt(r.Header.Revision, 10, 64)
	st.DBSize, _ = strconv.ParseInt(r.DBSize, 10, 64)
	st.DBSizeInUse, _ = strconv.ParseInt(r.DBSizeInUse, 10, 64)
	return st, nil
}

func etcdPost(ctx context.Context, etcdURL, path, body string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(etcdURL, "/")+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd %s: %s: %s", path, resp.Status, truncate(string(b), 300))
	}
	if into != nil {
		return json.Unmarshal(b, into)
	}
	return nil
}
