// Package fcm is a loopback Firebase Cloud Messaging HTTP v1 API with its
// own OAuth2 token endpoint: the firebase-admin SDK exchanges a service
// account's signed JWT for an access token here, then sends with it, exactly
// as against oauth2.googleapis.com and fcm.googleapis.com.
package fcm

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-dev/herald/senders/fake"
)

// MaxPayload is FCM's limit on a message's data and notification, in bytes.
const MaxPayload = 4096

// Options configures a Server.
type Options struct {
	// ProjectID, when set, is the only project sends are accepted for;
	// others get 403 PERMISSION_DENIED.
	ProjectID string
	// TLS serves HTTPS (HTTP/2) with a certificate signed by CAPEM.
	TLS bool
	// Seed makes the Script's random faults reproducible.
	Seed uint64
	// NoRecord leaves Received empty, for benchmarks and long dev runs.
	NoRecord bool
}

// Request is one messages:send call the fake received.
type Request struct {
	ProjectID string
	// Token is message.token.
	Token string
	// Message is the decoded "message" object.
	Message map[string]any
	// ValidateOnly is the request's validate_only.
	ValidateOnly bool
	Header       http.Header
	// ClientEmail is the service account the access token was issued to.
	ClientEmail string
	// Status and Code are what the fake answered (Code is the FCM errorCode
	// or the Google status; empty on success).
	Status int
	Code   string
}

type account struct {
	pub   *rsa.PublicKey
	keyID string
}

type accessToken struct {
	email  string
	expiry time.Time
}

// Server is a running fake. Create it with New; it is safe for concurrent use.
type Server struct {
	// Script decides faults for messages:send; the zero answer is success.
	Script *fake.Script
	// Received records every messages:send unless Options.NoRecord.
	Received *fake.Log[Request]

	opts  Options
	srv   *httptest.Server
	caPEM []byte
	done  chan struct{}
	once  sync.Once

	mu           sync.RWMutex
	accounts     map[string]account // by client_email
	unregistered map[string]bool

	tokens        sync.Map // access token → accessToken
	tokenRequests atomic.Int64
	ids           atomic.Uint64
}

// New starts a fake on 127.0.0.1.
func New(opts Options) (*Server, error) {
	s := &Server{
		Script:       fake.NewScript(opts.Seed),
		Received:     &fake.Log[Request]{},
		opts:         opts,
		done:         make(chan struct{}),
		accounts:     map[string]account{},
		unregistered: map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.serveToken)
	mux.HandleFunc("/v1/projects/", s.serveSend)
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if opts.TLS {
		s.srv.EnableHTTP2 = true
		s.srv.StartTLS()
		s.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
	} else {
		s.srv.Start()
	}
	return s, nil
}

// URL is the API base URL, for spec.endpoint (the SDK appends /v1/...).
func (s *Server) URL() string { return s.srv.URL }

// TokenURL is the OAuth2 token endpoint, the token_uri of NewCredentials.
func (s *Server) TokenURL() string { return s.srv.URL + "/token" }

// CAPEM is the certificate to trust with Options.TLS, for ProviderConfig.CA; nil otherwise.
func (s *Server) CAPEM() []byte { return s.caPEM }

// TokenRequests counts the token exchanges so far: a well-behaved client
// reuses its access token until it nears expiry.
func (s *Server) TokenRequests() int64 { return s.tokenRequests.Load() }

// Close stops the server and ends requests still waiting on latency.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.done)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// Unregister makes sends to token answer 404 UNREGISTERED from now on, as
// FCM does after the app is uninstalled.
func (s *Server) Unregister(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unregistered[token] = true
}

// NewCredentials creates a service account: an RSA key registered with the
// fake and the credentials.json Google would let you download for it, whose
// token_uri points at the fake.
func (s *Server) NewCredentials(clientEmail string) ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	var kid [20]byte
	_, _ = rand.Read(kid[:])
	project := s.opts.ProjectID
	if project == "" {
		project = "herald-fake"
	}
	creds := map[string]string{
		"type":                        "service_account",
		"project_id":                  project,
		"private_key_id":              hex.EncodeToString(kid[:]),
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                clientEmail,
		"client_id":                   "100000000000000000000",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   s.TokenURL(),
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
	}
	s.mu.Lock()
	s.accounts[clientEmail] = account{pub: &key.PublicKey, keyID: creds["private_key_id"]}
	s.mu.Unlock()
	return json.MarshalIndent(creds, "", "  ")
}

// errorSpec is how FCM answers each errorCode.
type errorSpec struct {
	status  int
	gstatus string
	message string
}

var errorCodes = map[string]errorSpec{
	"UNSPECIFIED_ERROR":      {500, "INTERNAL", "Unspecified error."},
	"INVALID_ARGUMENT":       {400, "INVALID_ARGUMENT", "Request contains an invalid argument."},
	"UNREGISTERED":           {404, "NOT_FOUND", "Requested entity was not found."},
	"SENDER_ID_MISMATCH":     {403, "PERMISSION_DENIED", "SenderId mismatch"},
	"QUOTA_EXCEEDED":         {429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'."},
	"UNAVAILABLE":            {503, "UNAVAILABLE", "The service is currently unavailable."},
	"INTERNAL":               {500, "INTERNAL", "Internal error encountered."},
	"THIRD_PARTY_AUTH_ERROR": {401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"},
}

// statusCodes is the errorCode of a fault scripted with a status only;
// statuses not listed get a non-JSON body, as from a proxy.
var statusCodes = map[int]string{
	400: "INVALID_ARGUMENT", 404: "UNREGISTERED", 429: "QUOTA_EXCEEDED", 500: "INTERNAL", 503: "UNAVAILABLE",
}

// googleStatus is the status of an HTTP code without an FCM errorCode.
var googleStatus = map[int]string{
	400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
	409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}

func (s *Server) serveSend(w http.ResponseWriter, r *http.Request) {
	f := s.Script.Next()
	if !fake.Apply(w, r, f, s.done) {
		return
	}
	rec := Request{Header: r.Header}
	status, code, msg := s.check(r, &rec)
	scripted := status == 0 && !f.OK()
	page := ""
	if scripted {
		status, code, msg = faultAnswer(f)
		fake.SetRetryAfter(w.Header(), f)
		page = f.Body
	}
	if page == "" && status != 0 && code == "" && googleStatus[status] == "" {
		// A status FCM itself never answers with comes from a proxy.
		page = fake.HTMLError(status)
	}
	switch {
	case status == 0:
		status = http.StatusOK
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(status)
		b := make([]byte, 0, 64)
		b = append(b, `{"name":"projects/`...)
		b = append(b, rec.ProjectID...)
		b = append(b, "/messages/0:"...)
		b = strconv.AppendUint(b, 1700000000000000+s.ids.Add(1), 10)
		b = append(b, `%31bd1c9631bd1c96"}`...)
		_, _ = w.Write(b)
	case page != "":
		fake.WriteHTML(w, status, page)
	default:
		writeError(w, status, code, msg)
	}
	if !s.opts.NoRecord {
		rec.Status = status
		rec.Code = code
		if code == "" {
			rec.Code = googleStatus[status]
		}
		s.Received.Add(rec)
	}
}

func faultAnswer(f fake.Fault) (int, string, string) {
	code := f.Reason
	if code == "" {
		code = statusCodes[f.Status]
	}
	spec, ok := errorCodes[code]
	status := f.Status
	if status == 0 {
		status = spec.status
		if !ok {
			status = http.StatusBadRequest
		}
	}
	msg := spec.message
	if msg == "" {
		msg = http.StatusText(status)
	}
	return status, code, msg
}

// writeError writes Google's JSON error, with the FcmError detail when code is
// an FCM errorCode.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	gstatus := googleStatus[status]
	if spec, ok := errorCodes[code]; ok && spec.status == status {
		gstatus = spec.gstatus
	}
	if gstatus == "" {
		gstatus = "UNKNOWN"
	}
	type detail struct {
		Type      string `json:"@type"`
		ErrorCode string `json:"errorCode"`
	}
	var body struct {
		Error struct {
			Code    int      `json:"code"`
			Message string   `json:"message"`
			Status  string   `json:"status"`
			Details []detail `json:"details,omitempty"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message, body.Error.Status = status, msg, gstatus
	if _, ok := errorCodes[code]; ok {
		body.Error.Details = []detail{{Type: "type.googleapis.com/google.firebase.fcm.v1.FcmError", ErrorCode: code}}
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// check applies FCM's own validation: path, auth, project, body, token.
func (s *Server) check(r *http.Request, rec *Request) (int, string, string) {
	project, ok := strings.CutPrefix(r.URL.Path, "/v1/projects/")
	if ok {
		project, ok = strings.CutSuffix(project, "/messages:send")
	}
	if !ok || project == "" || strings.Contains(project, "/") {
		return http.StatusNotFound, "", "The requested URL was not found on this server."
	}
	rec.ProjectID = project
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "", "Method not allowed."
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	v, found := s.tokens.Load(bearer)
	if !ok || !found || time.Now().After(v.(accessToken).expiry) {
		return http.StatusUnauthorized, "", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."
	}
	rec.ClientEmail = v.(accessToken).email
	if s.opts.ProjectID != "" && project != s.opts.ProjectID {
		return http.StatusForbidden, "", "Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/" + project + "' (or it may not exist)."
	}

	var req struct {
		Message      map[string]any `json:"message"`
		ValidateOnly bool           `json:"validate_only"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || req.Message == nil {
		return http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid JSON payload received."
	}
	rec.Message, rec.ValidateOnly = req.Message, req.ValidateOnly
	token, _ := req.Message["token"].(string)
	rec.Token = token
	_, topic := req.Message["topic"].(string)
	_, condition := req.Message["condition"].(string)
	if token == "" && !topic && !condition {
		return http.StatusBadRequest, "INVALID_ARGUMENT", "Recipient of the message is not set."
	}
	if token != "" && !validToken(token) {
		return http.StatusBadRequest, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"
	}
	if data, ok := req.Message["data"].(map[string]any); ok {
		for k, v := range data {
			if _, ok := v.(string); !ok || reservedKey(k) {
				return http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid data payload key: " + k
			}
		}
	}
	if payloadSize(req.Message) > MaxPayload {
		return http.StatusBadRequest, "INVALID_ARGUMENT", "Message is too big"
	}
	s.mu.RLock()
	gone := s.unregistered[token]
	s.mu.RUnlock()
	if gone {
		return http.StatusNotFound, "UNREGISTERED", errorCodes["UNREGISTERED"].message
	}
	return 0, "", ""
}

func payloadSize(m map[string]any) int {
	n := 0
	for _, k := range []string{"data", "notification"} {
		if v, ok := m[k]; ok {
			b, _ := json.Marshal(v)
			n += len(b)
		}
	}
	return n
}

func reservedKey(k string) bool {
	switch k {
	case "from", "notification", "message_type":
		return true
	}
	return strings.HasPrefix(k, "google.") || strings.HasPrefix(k, "gcm.")
}

// validToken is the shape of registration tokens: long, URL-safe base64 plus ':'.
func validToken(t string) bool {
	if len(t) < 32 || len(t) > 4096 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == ':') {
			return false
		}
	}
	return true
}
