package render

import (
	"text/template/parse"
)

// stepVar receives the result of the step counter injected into loops; the
// name cannot be written in a template (the lexer would not accept it), so
// it never clashes with the author's variables.
const stepVar = "$herald·step"

type instrumentError struct {
	pos parse.Pos
	msg string
}

// instrument rewrites a parsed tree so its execution is bounded and its
// functions can charge the execution's budget:
//
//   - every call of a Herald function gets $ (the root data, which carries
//     the budget) as a hidden first argument: {{upper .x}} runs as
//     {{upper $ .x}};
//   - every range body starts with {{$herald·step := _step $}}, so a loop
//     costs a step per iteration even when its body calls nothing;
//   - define, template and block are rejected (recursion would escape the
//     budget, and a field is one template anyway), as is redeclaring $;
//   - in html bodies the html, js and urlquery builtins are rejected:
//     html/template escapes by context, and these would bypass the budget.
func instrument(tree *parse.Tree, html bool) *instrumentError {
	w := walker{tree: tree, html: html}
	w.list(tree.Root)
	return w.err
}

type walker struct {
	tree *parse.Tree
	html bool
	err  *instrumentError
}

func (w *walker) fail(pos parse.Pos, msg string) {
	if w.err == nil {
		w.err = &instrumentError{pos: pos, msg: msg}
	}
}

func (w *walker) list(l *parse.ListNode) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		w.node(n)
	}
}

func (w *walker) node(n parse.Node) {
	switch n := n.(type) {
	case *parse.ActionNode:
		w.pipe(n.Pipe)
	case *parse.IfNode:
		w.branch(&n.BranchNode)
	case *parse.WithNode:
		w.branch(&n.BranchNode)
	case *parse.RangeNode:
		w.branch(&n.BranchNode)
		if n.List == nil {
			n.List = &parse.ListNode{NodeType: parse.NodeList, Pos: n.Pos}
		}
		n.List.Nodes = append([]parse.Node{w.stepAction(n.Pos, n.Line)}, n.List.Nodes...)
	case *parse.TemplateNode:
		w.fail(n.Pos, "template and block are not supported: each field is one template")
	}
}

func (w *walker) branch(b *parse.BranchNode) {
	w.pipe(b.Pipe)
	w.list(b.List)
	w.list(b.ElseList)
}

func (w *walker) pipe(p *parse.PipeNode) {
	if p == nil {
		return
	}
	for _, v := range p.Decl {
		if len(v.Ident) > 0 && v.Ident[0] == "$" {
			w.fail(v.Pos, "$ cannot be redeclared")
		}
	}
	for _, cmd := range p.Cmds {
		w.command(cmd)
	}
}

func (w *walker) command(cmd *parse.CommandNode) {
	for i, arg := range cmd.Args {
		switch a := arg.(type) {
		case *parse.PipeNode:
			w.pipe(a)
		case *parse.ChainNode:
			if p, ok := a.Node.(*parse.PipeNode); ok {
				w.pipe(p)
			}
		case *parse.IdentifierNode:
			if w.html && htmlForbidden[a.Ident] {
				w.fail(a.Pos, a.Ident+" is not available in html bodies: html/template already escapes every value for its context")
				continue
			}
			// Only a function in command position is called with arguments;
			// elsewhere it is called with none and fails its arity check.
			if i == 0 {
				if _, ok := statefulNames[a.Ident]; ok {
					dollar := &parse.VariableNode{NodeType: parse.NodeVariable, Pos: a.Pos, Ident: []string{"$"}}
					cmd.Args = append([]parse.Node{a, dollar}, cmd.Args[1:]...)
				}
			}
		}
	}
}

func (w *walker) stepAction(pos parse.Pos, line int) parse.Node {
	return &parse.ActionNode{
		NodeType: parse.NodeAction, Pos: pos, Line: line,
		Pipe: &parse.PipeNode{
			NodeType: parse.NodePipe, Pos: pos, Line: line,
			Decl: []*parse.VariableNode{{NodeType: parse.NodeVariable, Pos: pos, Ident: []string{stepVar}}},
			Cmds: []*parse.CommandNode{{
				NodeType: parse.NodeCommand, Pos: pos,
				Args: []parse.Node{
					parse.NewIdentifier(stepFunc).SetTree(w.tree).SetPos(pos),
					&parse.VariableNode{NodeType: parse.NodeVariable, Pos: pos, Ident: []string{"$"}},
				},
			}},
		},
	}
}

var htmlForbidden = map[string]bool{"html": true, "js": true, "urlquery": true}
