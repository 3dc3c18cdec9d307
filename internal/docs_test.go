package internal_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocs enforces the docs standard across the module: every exported
// identifier has a doc comment, every package has a doc.go, and every
// public (non-internal, non-main) package has a runnable Example.
func TestDocs(t *testing.T) {
	root := ".."
	dirs := map[string]bool{}
	require := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	require(filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			dirs[filepath.Dir(path)] = true
		}
		return nil
	}))
	for dir := range dirs {
		checkPackage(t, root, dir)
	}
}

func checkPackage(t *testing.T, root, dir string) {
	rel, _ := filepath.Rel(root, dir)
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var isMain, hasDocGo, hasExample, hasSource bool
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if f.Name.Name == "main" {
			isMain = true
		}
		if strings.HasSuffix(name, "_test.go") {
			for _, decl := range f.Decls {
				if fn, ok := decl.(*ast.FuncDecl); ok && strings.HasPrefix(fn.Name.Name, "Example") && fn.Recv == nil {
					hasExample = true
				}
			}
			continue
		}
		if hasBuildTag(f, "tools") {
			continue
		}
		hasSource = true
		if name == "doc.go" {
			hasDocGo = true
		}
		for _, missing := range undocumented(f) {
			t.Errorf("%s: exported %s has no doc comment", fset.Position(missing.pos), missing.name)
		}
	}
	if !hasSource || isMain {
		return
	}
	if !hasDocGo {
		t.Errorf("%s: package has no doc.go", rel)
	}
	public := !strings.HasPrefix(rel, "internal") && !strings.HasPrefix(rel, "examples")
	if public && !hasExample {
		t.Errorf("%s: package has no runnable Example function", rel)
	}
}

func hasBuildTag(f *ast.File, tag string) bool {
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			if strings.HasPrefix(c.Text, "//go:build") && strings.Contains(c.Text, tag) {
				return true
			}
		}
	}
	return false
}

type named struct {
	name string
	pos  token.Pos
}

func undocumented(f *ast.File) []named {
	var out []named
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() || d.Doc != nil {
				continue
			}
			if d.Recv != nil && !exportedReceiver(d.Recv) {
				continue
			}
			out = append(out, named{d.Name.Name, d.Pos()})
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() && d.Doc == nil && s.Doc == nil {
						out = append(out, named{s.Name.Name, s.Pos()})
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						// A documented const/var block documents its members.
						if n.IsExported() && d.Doc == nil && s.Doc == nil && s.Comment == nil {
							out = append(out, named{n.Name, n.Pos()})
						}
					}
				}
			}
		}
	}
	return out
}

func exportedReceiver(recv *ast.FieldList) bool {
	if len(recv.List) == 0 {
		return false
	}
	typ := recv.List[0].Type
	for {
		switch x := typ.(type) {
		case *ast.StarExpr:
			typ = x.X
		case *ast.IndexExpr:
			typ = x.X
		case *ast.IndexListExpr:
			typ = x.X
		case *ast.Ident:
			return x.IsExported()
		default:
			return false
		}
	}
}
