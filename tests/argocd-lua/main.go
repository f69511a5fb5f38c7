// Command argocd-lua runs an Argo CD resource health script the way Argo CD does: in
// gopher-lua, with only the package, base and table libraries and a reduced os library
// opened (Argo CD's default unless a customization sets useOpenLibs), the object decoded
// from JSON into the global `obj`, and the returned table read back as {status, message}.
//
// Usage: argocd-lua health.lua < objects.jsonl
// Each input line is one object as JSON; each output line is the verdict as JSON, or
// {"error": "..."} when the script fails (what Argo CD then shows instead of a health).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

type verdict struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// openReducedOs offers what a health check could want from os (clock and time) and nothing
// that reaches the file system, the environment or other processes.
func openReducedOs(l *lua.LState) int {
	table := l.RegisterModule(lua.OsLibName, map[string]lua.LGFunction{
		"time": func(l *lua.LState) int {
			l.Push(lua.LNumber(time.Now().Unix()))
			return 1
		},
		"clock": func(l *lua.LState) int {
			l.Push(lua.LNumber(float64(time.Now().UnixNano()) / 1e9))
			return 1
		},
	})
	l.Push(table)
	return 1
}

func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		list := l.CreateTable(len(v), 0)
		for _, item := range v {
			list.Append(toLua(l, item))
		}
		return list
	case map[string]interface{}:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetString(key, toLua(l, item))
		}
		return table
	}
	return lua.LNil
}

func run(script string, object map[string]interface{}) verdict {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	libraries := []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openReducedOs},
	}
	for _, library := range libraries {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(library.open), NRet: 0, Protect: true}, lua.LString(library.name)); err != nil {
			return verdict{Error: fmt.Sprintf("opening %s: %v", library.name, err)}
		}
	}
	l.SetGlobal("obj", toLua(l, object))
	if err := l.DoString(script); err != nil {
		return verdict{Error: err.Error()}
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return verdict{Error: fmt.Sprintf("expected a table from the script, got %s", l.Get(-1).Type())}
	}
	status, statusOk := table.RawGetString("status").(lua.LString)
	message, messageOk := table.RawGetString("message").(lua.LString)
	if !statusOk || !messageOk {
		return verdict{Error: "the returned table lacks a string status or message"}
	}
	return verdict{Status: string(status), Message: string(message)}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua health.lua < objects.jsonl")
		os.Exit(2)
	}
	source, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	input := bufio.NewScanner(os.Stdin)
	input.Buffer(make([]byte, 1<<20), 16<<20)
	output := json.NewEncoder(os.Stdout)
	for input.Scan() {
		var object map[string]interface{}
		if err := json.Unmarshal(input.Bytes(), &object); err != nil {
			fmt.Fprintln(os.Stderr, "bad input line:", err)
			os.Exit(2)
		}
		if err := output.Encode(run(string(source), object)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
}
