package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// account is a Notification with what a reader needs beside it: its
// children (a fan-out's deliveries live there) and, for describe, Events.
type account struct {
	n        *v1alpha1.Notification
	children []v1alpha1.Notification
	events   []corev1.Event
}

// account reads the named Notification of the command's namespace, its
// children, and its Events when events.
func (e *env) account(ctx context.Context, name string, events bool) (*account, error) {
	c, ns, err := e.client()
	if err != nil {
		return nil, err
	}
	a := &account{n: &v1alpha1.Notification{}}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, a.n); err != nil {
		return nil, err
	}
	var kids v1alpha1.NotificationList
	if err := c.List(ctx, &kids, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelParent: name}); err != nil {
		return nil, err
	}
	a.children = kids.Items
	slices.SortFunc(a.children, func(x, y v1alpha1.Notification) int { return strings.Compare(x.Name, y.Name) })
	if events {
		var evs corev1.EventList
		if err := c.List(ctx, &evs, client.InNamespace(ns), client.MatchingFields{"involvedObject.uid": string(a.n.UID)}); err != nil {
			return nil, err
		}
		a.events = evs.Items
		slices.SortFunc(a.events, func(x, y corev1.Event) int { return eventTime(x).Compare(eventTime(y)) })
	}
	return a, nil
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case e.Series != nil:
		return e.Series.LastObservedTime.Time
	}
	return e.EventTime.Time
}

// deliveries prints the delivery log: the Notification's own deliveries,
// then its children's, with the child named when there are children.
func (a *account) deliveries(w io.Writer, now time.Time) {
	tw := printers.GetNewTabWriter(w)
	defer tw.Flush()
	header := "CHANNEL\tRECIPIENT\tPROVIDER\tSTATE\tREASON\tATTEMPTS\tSENT\tMESSAGE"
	if len(a.children) > 0 {
		header = "NOTIFICATION\t" + header
	}
	fmt.Fprintln(tw, header)
	row := func(n *v1alpha1.Notification) {
		for _, d := range n.Status.Deliveries {
			if len(a.children) > 0 {
				fmt.Fprintf(tw, "%s\t", n.Name)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.Channel, recipient(d), orNone(d.Provider), d.State,
				orNone(d.Reason), d.Attempts, ago(d.SentTime, now), d.Message)
		}
	}
	row(a.n)
	for i := range a.children {
		row(&a.children[i])
	}
}

// summaryLine is the phase and the counts, children included.
func summaryLine(n *v1alpha1.Notification) string {
	s := n.Status.Summary
	return fmt.Sprintf("notification/%s %s: %s, %d failed, %d suppressed, %d pending of %d",
		n.Name, orNone(string(n.Status.Phase)), sentCount(s), s.Failed, s.Suppressed, s.Pending, s.Total)
}

// sentCount is "N sent", with how many of them a provider's receipt says
// arrived when any did.
func sentCount(s v1alpha1.DeliverySummary) string {
	if s.Delivered > 0 {
		return fmt.Sprintf("%d sent (%d delivered)", s.Sent, s.Delivered)
	}
	return fmt.Sprintf("%d sent", s.Sent)
}

// describe prints everything about the Notification, kubectl describe style.
func (a *account) describe(w io.Writer, now time.Time) {
	n, s := a.n, a.n.Spec
	field := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-14s%s\n", k+":", v)
		}
	}
	field("Name", n.Name)
	field("Namespace", n.Namespace)
	if s.TemplateRef != nil {
		field("Template", s.TemplateRef.Name)
	} else if s.Content != nil {
		field("Content", "inline ("+strings.Join(contentChannels(s.Content), ", ")+")")
	}
	if len(s.Recipients) > 0 {
		field("Recipients", fmt.Sprint(len(s.Recipients)))
	}
	if s.RecipientSelector != nil {
		field("Selector", metav1.FormatLabelSelector(s.RecipientSelector))
	}
	field("Priority", string(s.Priority))
	field("Category", s.Category)
	field("Delivery", string(s.Delivery))
	field("Key", s.IdempotencyKey)
	field("Duplicate of", n.Status.DuplicateOf)
	field("Created", n.CreationTimestamp.UTC().Format(time.RFC3339)+" ("+ago(&n.CreationTimestamp, now)+" ago)")
	if t := n.Status.StartTime; t != nil {
		field("Started", t.UTC().Format(time.RFC3339))
	}
	if t := n.Status.CompletionTime; t != nil {
		field("Completed", t.UTC().Format(time.RFC3339)+" (took "+t.Sub(n.CreationTimestamp.Time).String()+")")
	}
	field("Phase", orNone(string(n.Status.Phase)))
	sum := n.Status.Summary
	field("Summary", fmt.Sprintf("%d total, %s, %d failed, %d suppressed, %d pending", sum.Total, sentCount(sum), sum.Failed, sum.Suppressed, sum.Pending))
	if len(a.children) > 0 {
		field("Children", fmt.Sprint(len(a.children)))
	}
	fmt.Fprintln(w, "Conditions:")
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tAGE\tMESSAGE")
	for _, c := range n.Status.Conditions {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, ago(&c.LastTransitionTime, now), c.Message)
	}
	tw.Flush()
	fmt.Fprintln(w, "Deliveries:")
	a.deliveries(indent{w}, now)
	fmt.Fprintln(w, "Events:")
	if len(a.events) == 0 {
		fmt.Fprintln(w, "  <none>")
		return
	}
	tw = printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "  TYPE\tREASON\tAGE\tMESSAGE")
	for _, e := range a.events {
		t := metav1.NewTime(eventTime(e))
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", e.Type, e.Reason, ago(&t, now), e.Message)
	}
	tw.Flush()
}

// indent prefixes every line with two spaces.
type indent struct{ w io.Writer }

func (i indent) Write(p []byte) (int, error) {
	lines := strings.SplitAfter(string(p), "\n")
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString("  " + l)
		}
	}
	if _, err := io.WriteString(i.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}

func contentChannels(c *v1alpha1.ChannelContent) []string {
	var out []string
	for ch, set := range map[v1alpha1.Channel]bool{v1alpha1.ChannelEmail: c.Email != nil, v1alpha1.ChannelSMS: c.SMS != nil,
		v1alpha1.ChannelPush: c.Push != nil, v1alpha1.ChannelWebhook: c.Webhook != nil} {
		if set {
			out = append(out, string(ch))
		}
	}
	slices.Sort(out)
	return out
}

// ago is how long before now t was, as kubectl prints ages; <none> when unset.
func ago(t *metav1.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "<none>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func newGetCommand(e *env) *cobra.Command {
	var out *output
	cmd := &cobra.Command{
		Use:               "get NAME",
		Short:             "Show a Notification's delivery log, its children's included",
		Args:              exactName,
		ValidArgsFunction: completeNames(e),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := e.account(cmd.Context(), args[0], false)
			if err != nil {
				return err
			}
			if out.set() {
				p, err := out.printer()
				if err != nil {
					return err
				}
				return p.PrintObj(a.n, e.streams.Out)
			}
			fmt.Fprintln(e.streams.Out, summaryLine(a.n))
			a.deliveries(e.streams.Out, e.now())
			return nil
		},
	}
	out = addOutput(cmd, "")
	return cmd
}

func newDescribeCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:               "describe NAME",
		Short:             "Show everything about a Notification: spec, summary, conditions, deliveries (children aggregated), Events",
		Args:              exactName,
		ValidArgsFunction: completeNames(e),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := e.account(cmd.Context(), args[0], true)
			if err != nil {
				return err
			}
			a.describe(e.streams.Out, e.now())
			return nil
		},
	}
}

func newHistoryCommand(e *env) *cobra.Command {
	var (
		selector      string
		limit         int
		allNamespaces bool
		children      bool
	)
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List recent Notifications, newest first, with phase and counts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ns, err := e.client()
			if err != nil {
				return err
			}
			sel, err := labels.Parse(selector)
			if err != nil {
				return invalidf("--selector: %v", err)
			}
			if !children {
				top, _ := labels.NewRequirement(v1alpha1.LabelParent, "!", nil) // constant arguments: cannot fail
				sel = sel.Add(*top)
			}
			opts := []client.ListOption{client.MatchingLabelsSelector{Selector: sel}}
			if !allNamespaces {
				opts = append(opts, client.InNamespace(ns))
			}
			items, err := listAll(cmd.Context(), c, opts...)
			if err != nil {
				return err
			}
			slices.SortFunc(items, func(x, y v1alpha1.Notification) int {
				return y.CreationTimestamp.Compare(x.CreationTimestamp.Time)
			})
			if limit > 0 && len(items) > limit {
				items = items[:limit]
			}
			history(e.streams.Out, items, allNamespaces, e.now())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&selector, "selector", "l", "", "Label selector of the Notifications to list.")
	f.IntVar(&limit, "limit", 20, "How many to show (0: all).")
	f.BoolVarP(&allNamespaces, "all-namespaces", "A", false, "List every namespace.")
	f.BoolVar(&children, "children", false, "Include the child Notifications of large fan-outs.")
	return cmd
}

// listAll lists Notifications page by page.
func listAll(ctx context.Context, c client.Client, opts ...client.ListOption) ([]v1alpha1.Notification, error) {
	var items []v1alpha1.Notification
	cont := ""
	for {
		var page v1alpha1.NotificationList
		if err := c.List(ctx, &page, append(opts, client.Limit(500), client.Continue(cont))...); err != nil {
			return nil, err
		}
		items = append(items, page.Items...)
		if cont = page.Continue; cont == "" {
			return items, nil
		}
	}
}

// history prints one row per Notification.
func history(w io.Writer, items []v1alpha1.Notification, namespaces bool, now time.Time) {
	tw := printers.GetNewTabWriter(w)
	defer tw.Flush()
	if namespaces {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "NAME\tPHASE\tTOTAL\tSENT\tFAILED\tSUPPRESSED\tTEMPLATE\tAGE\tTOOK")
	for _, n := range items {
		if namespaces {
			fmt.Fprintf(tw, "%s\t", n.Namespace)
		}
		tmpl := "<inline>"
		if n.Spec.TemplateRef != nil {
			tmpl = n.Spec.TemplateRef.Name
		}
		took := "<none>"
		if t := n.Status.CompletionTime; t != nil {
			took = duration.HumanDuration(t.Sub(n.CreationTimestamp.Time))
		}
		s := n.Status.Summary
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", n.Name, orNone(string(n.Status.Phase)), s.Total, s.Sent, s.Failed, s.Suppressed,
			tmpl, ago(&n.CreationTimestamp, now), took)
	}
}
