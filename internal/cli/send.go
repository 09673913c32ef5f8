package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// waitOptions are the flags of a wait: --timeout and --allow-partial.
type waitOptions struct {
	timeout      time.Duration
	allowPartial bool
}

func (w *waitOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&w.timeout, "timeout", 10*time.Minute, "How long to wait for the Notification to finish (exit 3 after it); 0 checks once, a negative value waits a week.")
	cmd.Flags().BoolVar(&w.allowPartial, "allow-partial", false, "Exit 0 when the Notification ends PartiallySent.")
}

func newSendCommand(e *env) *cobra.Command {
	m := &message{stdin: e.streams.In}
	var (
		wait   bool
		w      waitOptions
		dryRun string
	)
	var out *output
	cmd := &cobra.Command{
		Use:   "send",
		Short: "Create a Notification; with --wait, follow it and exit with its outcome",
		Example: `  # A build alert from a Template to a team, waiting for the outcome:
  kubectl herald send --template build-failed --param build=1234 --selector team=platform --wait

  # Inline content to one address, in a pipeline (the run id makes a retried step send once):
  kubectl herald send --to email:oncall@example.com --email-subject "Deploy done" --text "v1.2.3 is live" --wait

  # Several recipients and channels:
  kubectl herald send --template release --to user:alice,phone:+14155550100 --channel email,sms --wait --timeout 2m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m.keySet = cmd.Flags().Changed("idempotency-key")
			m.ttlSet = cmd.Flags().Changed("ttl")
			c, ns, err := e.client()
			if err != nil {
				return err
			}
			n, err := m.notification(ns, e.now(), e.getenv)
			if err != nil {
				return err
			}
			var opts []client.CreateOption
			switch dryRun {
			case "none":
			case "server":
				opts = append(opts, client.DryRunAll)
				_ = out.flags.Complete("%s (server dry run)")
			case "client":
				_ = out.flags.Complete("%s (dry run)")
			default:
				return invalidf(`--dry-run=%q: want "none", "server" or "client"`, dryRun)
			}
			printer, err := out.printer()
			if err != nil {
				return err
			}
			if dryRun != "client" {
				if err := c.Create(cmd.Context(), n, opts...); err != nil {
					return err
				}
			}
			structured := out.set()
			progress := e.streams.Out
			if structured {
				progress = e.streams.ErrOut // stdout holds the object alone
			}
			if !wait || dryRun != "none" {
				return printer.PrintObj(n, e.streams.Out)
			}
			if !structured {
				if err := printer.PrintObj(n, e.streams.Out); err != nil {
					return err
				}
			}
			if !m.keySet && n.Spec.IdempotencyKey != "" {
				fmt.Fprintf(progress, "idempotency key %s (from the CI run id)\n", n.Spec.IdempotencyKey)
			}
			if !structured {
				printer = nil
			}
			return e.await(cmd.Context(), c, n.Namespace, n.Name, w, printer, progress)
		},
	}
	f := cmd.Flags()
	f.StringVar(&m.name, "name", "", "Name of the Notification (default: generated from the template name, or herald-).")
	f.StringVar(&m.template, "template", "", "Template to render, in the namespace.")
	f.StringArrayVar(&m.params, "param", nil, "Template parameter key=value (repeatable; a string value). Wins over --params-file.")
	f.StringVar(&m.paramsFile, "params-file", "", "JSON object of template parameters; - reads stdin.")
	f.StringVar(&m.emailSubject, "email-subject", "", "Inline email subject (with --text).")
	f.StringVar(&m.text, "text", "", "Inline email text body.")
	f.StringVar(&m.sms, "sms", "", "Inline SMS text.")
	f.StringVar(&m.pushTitle, "push-title", "", "Inline push title.")
	f.StringVar(&m.pushBody, "push-body", "", "Inline push body.")
	f.StringVar(&m.webhookText, "webhook-text", "", "Inline chat/webhook text.")
	f.StringArrayVar(&m.to, "to", nil, "Recipient: user:NAME, email:ADDR, phone:+E164, webhook:PROVIDER or device:PLATFORM:TOKEN (repeatable, or comma-separated).")
	f.StringVarP(&m.selector, "selector", "l", "", "Label selector of UserPreferences to notify (fan-out), e.g. team=platform.")
	f.StringArrayVar(&m.channels, "channel", nil, "Restrict to these channels: push, sms, email, webhook (repeatable, or comma-separated).")
	f.StringVar(&m.category, "category", "", "Category, for opt-outs (default: the template's).")
	f.StringVar(&m.priority, "priority", "", "Priority: low, normal, high or critical (critical overrides quiet hours and opt-outs).")
	f.StringVar(&m.sendAt, "send-at", "", "Send later: an RFC 3339 time or a delay such as +10m.")
	f.StringVar(&m.expiresAfter, "expires-after", "", "Give up on deliveries not sent this long after creation (or sendAt), e.g. 10m (default: the API's 24h).")
	f.StringVar(&m.delivery, "delivery", "", "AtLeastOnce (default) or AtMostOnce.")
	f.StringVar(&m.idempotencyKey, "idempotency-key", "", "Send once per key in the namespace (default: from the CI run id: HERALD_RUN_ID, GITHUB_RUN_ID, CI_PIPELINE_ID, BUILDKITE_BUILD_ID, BUILD_TAG, plus a digest of the message). An empty value turns it off.")
	f.Int32Var(&m.ttl, "ttl", 0, "Seconds to keep the Notification after it finishes (default: the manager's).")
	f.BoolVar(&wait, "wait", false, "Follow the Notification until it finishes, print each delivery as it ends, and exit with the outcome.")
	f.StringVar(&dryRun, "dry-run", "none", `"server" submits for validation without creating; "client" only prints the object.`)
	f.Lookup("dry-run").NoOptDefVal = "client"
	w.addFlags(cmd)
	out = addOutput(cmd, "created")
	return cmd
}

func newWaitCommand(e *env) *cobra.Command {
	var w waitOptions
	var out *output
	cmd := &cobra.Command{
		Use:               "wait NAME",
		Short:             "Follow a Notification until it finishes and exit with its outcome",
		Example:           `  kubectl herald wait build-failed-x7k2p --timeout 5m`,
		Args:              exactName,
		ValidArgsFunction: completeNames(e),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := e.client()
			if err != nil {
				return err
			}
			var printer printers.ResourcePrinter
			progress := e.streams.Out
			if out.set() {
				if printer, err = out.printer(); err != nil {
					return err
				}
				progress = e.streams.ErrOut
			}
			return e.await(cmd.Context(), c, ns, args[0], w, printer, progress)
		},
	}
	w.addFlags(cmd)
	out = addOutput(cmd, "")
	return cmd
}

// await follows ns/name until it finishes or w.timeout passes, printing
// deliveries to progress as they end, the final object with printer when
// one is given, and returns the error whose exit code is the outcome.
func (e *env) await(ctx context.Context, c client.WithWatch, ns, name string, w waitOptions, printer printers.ResourcePrinter, progress io.Writer) error {
	start := e.now()
	f := newFollower(progress)
	var n *v1alpha1.Notification
	var err error
	switch {
	case w.timeout == 0: // check once, as kubectl wait --timeout=0
		n = &v1alpha1.Notification{}
		if err = c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, n); err != nil {
			return err
		}
		f.show(n)
		if !n.Status.Phase.Finished() {
			return timeoutError(name, n)
		}
	default:
		timeout := w.timeout
		if timeout < 0 {
			timeout = 7 * 24 * time.Hour
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if n, err = follow(wctx, c, ns, name, f); err != nil {
			return err
		}
	}
	if printer != nil {
		if err := printer.PrintObj(n, e.streams.Out); err != nil {
			return err
		}
	}
	s := n.Status.Summary
	fmt.Fprintf(progress, "notification/%s %s: %d sent, %d failed, %d suppressed of %d (waited %s)\n",
		n.Name, n.Status.Phase, s.Sent, s.Failed, s.Suppressed, s.Total, elapsed(e.now().Sub(start)))
	if orig := n.Status.DuplicateOf; orig != "" {
		was := "it is gone"
		var o v1alpha1.Notification
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: orig}, &o); err == nil {
			was = "it is " + orNone(string(o.Status.Phase))
		}
		fmt.Fprintf(progress, "duplicate of notification/%s (idempotency key %q): nothing sent again; %s\n", orig, n.Spec.IdempotencyKey, was)
		return nil
	}
	if code := Outcome(n.Status.Phase, w.allowPartial); code != ExitOK {
		return withCode(code, fmt.Errorf("notification/%s ended %s%s", n.Name, n.Status.Phase, readyMessage(n)))
	}
	return nil
}

// readyMessage is ": " and the Ready condition's reason and message, when set.
func readyMessage(n *v1alpha1.Notification) string {
	c := meta.FindStatusCondition(n.Status.Conditions, v1alpha1.ConditionReady)
	switch {
	case c == nil:
		return ""
	case c.Message == "":
		return ": " + c.Reason
	}
	return ": " + c.Reason + ": " + c.Message
}
