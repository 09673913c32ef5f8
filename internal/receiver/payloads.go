package receiver

import (
	"encoding/json"
	"slices"
	"strings"
)

// alertmanagerPayload is Alertmanager's webhook body (version 4).
type alertmanagerPayload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   json.Number       `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     string            `json:"startsAt"`
		EndsAt       string            `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	} `json:"alerts"`
}

// Alertmanager reads a webhook_config payload. Params carry the payload's
// fields as Alertmanager names them (status, commonLabels, alerts...), so
// a template reads .Params.commonLabels.alertname. The key is the group,
// the status and the alerts' start times: Alertmanager's retries, and the
// same group notified again unchanged, make one Notification; a new alert
// in the group, or the group resolving, makes another.
func Alertmanager(body []byte) (Event, error) {
	var p alertmanagerPayload
	if err := decode(body, &p); err != nil {
		return Event{}, err
	}
	if p.GroupKey == "" || (p.Status != "firing" && p.Status != "resolved") {
		return Event{}, invalid("not an Alertmanager webhook payload: groupKey and status (firing or resolved) are required")
	}
	params := map[string]any{}
	if err := decode(body, &params); err != nil {
		return Event{}, err
	}
	starts := make([]string, 0, len(p.Alerts))
	for _, a := range p.Alerts {
		starts = append(starts, a.Fingerprint+"@"+a.StartsAt)
	}
	slices.Sort(starts)
	return Event{Kind: "alert", Status: p.Status, Params: params,
		Key: keyOf("alertmanager", p.GroupKey, p.Status, strings.Join(starts, ","))}, nil
}

// githubWorkflowRun is the part of a workflow_run event Herald reads.
type githubWorkflowRun struct {
	Action      string `json:"action"`
	WorkflowRun struct {
		ID         json.Number `json:"id"`
		Name       string      `json:"name"`
		RunNumber  json.Number `json:"run_number"`
		RunAttempt json.Number `json:"run_attempt"`
		Status     string      `json:"status"`
		Conclusion string      `json:"conclusion"`
		HeadBranch string      `json:"head_branch"`
		HeadSHA    string      `json:"head_sha"`
		Event      string      `json:"event"`
		HTMLURL    string      `json:"html_url"`
		Actor      struct {
			Login string `json:"login"`
		} `json:"actor"`
	} `json:"workflow_run"`
	Repository struct {
		FullName string `json:"full_name"`
		HTMLURL  string `json:"html_url"`
	} `json:"repository"`
}

// GitHub reads a webhook delivery. A workflow_run becomes flat params
// (repository, workflow, conclusion, branch, sha, url, actor, runNumber,
// runAttempt) plus the whole payload as .Params.payload; it counts only
// once completed (its status is the conclusion). Other events keep their
// payload and their action as status.
func GitHub(event string, body []byte) (Event, error) {
	if event == "" {
		return Event{}, invalid("the X-GitHub-Event header is missing")
	}
	if event == "ping" {
		return Event{Kind: event, Ignore: "ping: the webhook is set up"}, nil
	}
	payload := map[string]any{}
	if err := decode(body, &payload); err != nil {
		return Event{}, err
	}
	ev := Event{Kind: event, Params: map[string]any{"event": event, "payload": payload}}
	if event != "workflow_run" {
		if a, ok := payload["action"].(string); ok {
			ev.Status = a
		}
		return ev, nil
	}
	var w githubWorkflowRun
	if err := decode(body, &w); err != nil {
		return Event{}, err
	}
	if w.Action != "completed" {
		ev.Ignore = "workflow run " + w.Action + ", not completed"
		return ev, nil
	}
	r := w.WorkflowRun
	ev.Status = r.Conclusion
	for k, v := range map[string]any{"repository": w.Repository.FullName, "workflow": r.Name, "conclusion": r.Conclusion,
		"branch": r.HeadBranch, "sha": r.HeadSHA, "url": r.HTMLURL, "actor": r.Actor.Login, "runNumber": r.RunNumber, "runAttempt": r.RunAttempt} {
		ev.Params[k] = v
	}
	ev.Key = keyOf("github", w.Repository.FullName, r.ID.String(), r.RunAttempt.String(), r.Conclusion)
	return ev, nil
}

// gitlabPipeline is the part of a pipeline event Herald reads.
type gitlabPipeline struct {
	ObjectKind       string `json:"object_kind"`
	ObjectAttributes struct {
		ID     json.Number `json:"id"`
		IID    json.Number `json:"iid"`
		Ref    string      `json:"ref"`
		SHA    string      `json:"sha"`
		Status string      `json:"status"`
		URL    string      `json:"url"`
		Source string      `json:"source"`
	} `json:"object_attributes"`
	User struct {
		Username string `json:"username"`
	} `json:"user"`
	Project struct {
		ID                json.Number `json:"id"`
		PathWithNamespace string      `json:"path_with_namespace"`
		WebURL            string      `json:"web_url"`
	} `json:"project"`
}

// GitLab reads a webhook. A pipeline event becomes flat params (project,
// ref, sha, status, url, user, pipelineID) plus the payload; its status is
// the pipeline's. Other kinds keep their payload.
func GitLab(body []byte) (Event, error) {
	payload := map[string]any{}
	if err := decode(body, &payload); err != nil {
		return Event{}, err
	}
	var p gitlabPipeline
	if err := decode(body, &p); err != nil {
		return Event{}, err
	}
	if p.ObjectKind == "" {
		return Event{}, invalid("not a GitLab webhook payload: object_kind is missing")
	}
	ev := Event{Kind: p.ObjectKind, Params: map[string]any{"event": p.ObjectKind, "payload": payload}}
	if p.ObjectKind != "pipeline" {
		return ev, nil
	}
	a := p.ObjectAttributes
	ev.Status = a.Status
	for k, v := range map[string]any{"project": p.Project.PathWithNamespace, "ref": a.Ref, "sha": a.SHA, "status": a.Status,
		"url": a.URL, "user": p.User.Username, "pipelineID": a.ID} {
		ev.Params[k] = v
	}
	ev.Key = keyOf("gitlab", p.Project.ID.String(), a.ID.String(), a.Status)
	return ev, nil
}

// Generic reads any JSON object as params; an Idempotency-Key header makes
// the sender's retries create one Notification.
func Generic(body []byte, idempotencyKey string) (Event, error) {
	params := map[string]any{}
	if err := decode(body, &params); err != nil {
		return Event{}, err
	}
	ev := Event{Kind: "generic", Params: params}
	if s, ok := params["status"].(string); ok {
		ev.Status = s
	}
	if idempotencyKey != "" {
		ev.Key = keyOf("generic", cut(idempotencyKey, 256))
	}
	return ev, nil
}
