// Package chromium drives a real headless Chromium (Debian's
// /usr/bin/chromium) through the Chrome DevTools Protocol, for the
// dashboard's browser test: open a page, type into a field, click a button
// with real mouse events, read the DOM, take a screenshot.
//
// It is a test helper (imported from _test.go files only) and a deliberately
// tiny CDP client: one page, the handful of methods the test needs, over
// golang.org/x/net/websocket. It is not a general browser automation
// library; use chromedp or Playwright for that.
package chromium

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/websocket"
)

// DefaultPath is where Debian's chromium package puts the browser.
const DefaultPath = "/usr/bin/chromium"

// Find returns the Chromium binary: DefaultPath, else "chromium" on PATH.
func Find() (string, error) {
	if _, err := os.Stat(DefaultPath); err == nil {
		return DefaultPath, nil
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		return "", fmt.Errorf("chromium not found at %s or on PATH (install it with .ci/install-chromium.sh)", DefaultPath)
	}
	return p, nil
}

// Browser is a running headless Chromium.
type Browser struct {
	cmd    *exec.Cmd
	port   int
	stderr *tailBuffer
	done   chan struct{}
}

// Start runs Chromium headless with a fresh profile in userDataDir and the
// DevTools endpoint on a random loopback port. Close stops it.
func Start(ctx context.Context, path, userDataDir string) (*Browser, error) {
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + userDataDir,
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		// x/net/websocket always sends an Origin header; DevTools refuses
		// connections from origins it was not told about.
		"--remote-allow-origins=http://127.0.0.1",
		"--window-size=1440,900", "--hide-scrollbars", "--mute-audio",
		"about:blank",
	}
	cmd := exec.Command(path, args...)
	stderr := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	setProcessGroup(cmd)
	// Wait returns once Chromium has exited even if a process that left
	// its group still holds the output pipe, so Close does not hang on it.
	cmd.WaitDelay = 5 * time.Second
	b := &Browser{cmd: cmd, stderr: stderr, done: make(chan struct{})}
	// Start and Wait on one goroutine locked to its thread: the kernel's
	// parent-death signal (see setParentDeathSignal) follows the thread
	// that started the child, so that thread must live as long as the
	// browser, and it then ends only with the test process.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(b.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	// Chromium writes the port it chose to DevToolsActivePort in the
	// profile directory once DevTools listens.
	portFile := filepath.Join(userDataDir, "DevToolsActivePort")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if data, err := os.ReadFile(portFile); err == nil {
			line, _, _ := strings.Cut(string(data), "\n")
			if p, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && p > 0 {
				b.port = p
				return b, nil
			}
		}
		select {
		case <-b.done:
			return nil, fmt.Errorf("chromium exited before DevTools listened: %s", stderr.String())
		case <-ctx.Done():
			b.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Close()
			return nil, fmt.Errorf("chromium did not write %s within 30 s: %s", portFile, stderr.String())
		}
	}
}

// Close stops the browser and every process it started.
func (b *Browser) Close() {
	killProcessGroup(b.cmd)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
	}
}

// Log is the tail of the browser's stderr, for failure messages.
func (b *Browser) Log() string { return b.stderr.String() }

// Page connects to the browser's first tab. DevTools may listen before
// that tab exists (on a loaded machine, for a while): it waits for it, as
// long as ctx allows and the browser runs.
func (b *Browser) Page(ctx context.Context) (*Page, error) {
	for {
		wsURL, err := b.pageTarget(ctx)
		if err != nil {
			return nil, err
		}
		if wsURL != "" {
			cfg, err := websocket.NewConfig(wsURL, "http://127.0.0.1")
			if err != nil {
				return nil, fmt.Errorf("DevTools socket %s: %w", wsURL, err)
			}
			ws, err := cfg.DialContext(ctx) // a hung browser must not hang the test
			if err != nil {
				return nil, fmt.Errorf("connect to the page's DevTools socket %s: %w", wsURL, err)
			}
			ws.MaxPayloadBytes = 64 << 20 // screenshots
			p := &Page{ws: ws, pending: make(map[int64]chan message), closed: make(chan struct{})}
			go p.readLoop()
			return p, nil
		}
		select {
		case <-b.done:
			return nil, fmt.Errorf("chromium exited before it opened a tab: %s", b.stderr.String())
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for chromium's first tab: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// pageTarget returns the DevTools socket of the browser's first tab, ""
// if it has none yet.
func (b *Browser) pageTarget(ctx context.Context) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/json/list", b.port), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("list DevTools targets: %w", err)
	}
	defer resp.Body.Close()
	var targets []struct {
		Type string `json:"type"`
		WS   string `json:"webSocketDebuggerUrl"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&targets); err != nil {
		return "", fmt.Errorf("list DevTools targets: %w", err)
	}
	for _, t := range targets {
		if t.Type == "page" && t.WS != "" {
			return t.WS, nil
		}
	}
	return "", nil
}

// Page is one browser tab under DevTools control.
type Page struct {
	ws *websocket.Conn

	mu      sync.Mutex // guards next, pending, err
	next    int64
	pending map[int64]chan message
	err     error
	closed  chan struct{}
}

type message struct {
	ID     int64           `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

func (p *Page) readLoop() {
	for {
		var m message
		if err := websocket.JSON.Receive(p.ws, &m); err != nil {
			p.mu.Lock()
			p.err = fmt.Errorf("DevTools connection: %w", err)
			for _, ch := range p.pending {
				close(ch)
			}
			p.pending = map[int64]chan message{}
			p.mu.Unlock()
			close(p.closed)
			return
		}
		p.mu.Lock() // events (no ID) are not used
		if ch, ok := p.pending[m.ID]; ok && m.ID != 0 {
			delete(p.pending, m.ID)
			ch <- m
		}
		p.mu.Unlock()
	}
}

// Close closes the DevTools connection.
func (p *Page) Close() { p.ws.Close() }

// Call sends one CDP command and decodes its result into result (if not
// nil).
func (p *Page) Call(ctx context.Context, method string, params, result any) error {
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return p.err
	}
	p.next++
	id := p.next
	ch := make(chan message, 1)
	p.pending[id] = ch
	p.mu.Unlock()
	req := map[string]any{"id": id, "method": method}
	if params != nil {
		req["params"] = params
	}
	if err := websocket.JSON.Send(p.ws, req); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: %w", method, p.err)
		}
		if m.Error != nil {
			return fmt.Errorf("%s: DevTools error %d: %s", method, m.Error.Code, m.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// markDocument tags the page's current document, so that
// waitNewDocument can tell it from the next one. (A load event alone
// cannot: one from an earlier navigation, such as the first tab's
// about:blank, may arrive after the next action started.)
func (p *Page) markDocument(ctx context.Context) error {
	return p.Eval(ctx, "window.__certfleetOld = true", nil)
}

// waitNewDocument waits, as long as ctx allows, until the page holds a
// document other than the one markDocument tagged, fully loaded.
func (p *Page) waitNewDocument(ctx context.Context, what string) error {
	for {
		var ready bool
		// While the page navigates, evaluation can fail (its context is
		// being replaced): ask again.
		err := p.Eval(ctx, `document.readyState === "complete" && window.__certfleetOld !== true`, &ready)
		if err == nil && ready {
			return nil
		}
		select {
		case <-p.closed:
			return fmt.Errorf("%s: %w", what, p.err)
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%s: %w (last: %v)", what, ctx.Err(), err)
			}
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Navigate opens url and waits for it to load.
func (p *Page) Navigate(ctx context.Context, url string) error {
	if err := p.markDocument(ctx); err != nil {
		return err
	}
	var res struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.Call(ctx, "Page.navigate", map[string]any{"url": url}, &res); err != nil {
		return err
	}
	if res.ErrorText != "" {
		return fmt.Errorf("navigate to %s: %s", url, res.ErrorText)
	}
	return p.waitNewDocument(ctx, "load "+url)
}

// Eval evaluates a JavaScript expression in the page (DevTools' own
// evaluation, which the page's Content-Security-Policy does not govern)
// and decodes its JSON value into out (if not nil).
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := p.Call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res); err != nil {
		return err
	}
	if e := res.ExceptionDetails; e != nil {
		return fmt.Errorf("evaluate %q: %s %s", expr, e.Text, e.Exception.Description)
	}
	if out != nil {
		if len(res.Result.Value) == 0 {
			return fmt.Errorf("evaluate %q: no value", expr)
		}
		return json.Unmarshal(res.Result.Value, out)
	}
	return nil
}

// Text returns the visible text of the page's body.
func (p *Page) Text(ctx context.Context) (string, error) {
	var s string
	err := p.Eval(ctx, "document.body ? document.body.innerText : ''", &s)
	return s, err
}

// HTML returns the page's DOM serialised.
func (p *Page) HTML(ctx context.Context) (string, error) {
	var s string
	err := p.Eval(ctx, "document.documentElement.outerHTML", &s)
	return s, err
}

// Type focuses the element selector matches and types text into it as
// keyboard input.
func (p *Page) Type(ctx context.Context, selector, text string) error {
	var ok bool
	if err := p.Eval(ctx, fmt.Sprintf("(() => { const e = document.querySelector(%s); if (!e) return false; e.focus(); return document.activeElement === e; })()", jsString(selector)), &ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("type into %s: no such element, or it cannot take the focus", selector)
	}
	return p.Call(ctx, "Input.insertText", map[string]any{"text": text}, nil)
}

// Click clicks the middle of the element selector matches with the mouse
// and, if navigates is set, waits for the page it leads to to load.
func (p *Page) Click(ctx context.Context, selector string, navigates bool) error {
	var pt *struct{ X, Y float64 }
	if err := p.Eval(ctx, fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) return null;
		e.scrollIntoView({block: "center"}); const r = e.getBoundingClientRect();
		return {X: r.left + r.width / 2, Y: r.top + r.height / 2}; })()`, jsString(selector)), &pt); err != nil {
		return err
	}
	if pt == nil {
		return fmt.Errorf("click %s: no such element", selector)
	}
	if navigates {
		if err := p.markDocument(ctx); err != nil {
			return err
		}
	}
	for _, typ := range []string{"mouseMoved", "mousePressed", "mouseReleased"} {
		ev := map[string]any{"type": typ, "x": pt.X, "y": pt.Y}
		if typ != "mouseMoved" {
			ev["button"], ev["clickCount"] = "left", 1
		}
		if err := p.Call(ctx, "Input.dispatchMouseEvent", ev, nil); err != nil {
			return err
		}
	}
	if navigates {
		return p.waitNewDocument(ctx, "load after clicking "+selector)
	}
	return nil
}

// Count returns how many elements of the page match the CSS selector: the
// browser test checks what a page shows by its elements' ids and classes,
// not by pixels.
func (p *Page) Count(ctx context.Context, selector string) (int, error) {
	var n int
	err := p.Eval(ctx, "document.querySelectorAll("+jsString(selector)+").length", &n)
	return n, err
}

// Screenshot returns a PNG of the whole page (not just the window).
func (p *Page) Screenshot(ctx context.Context) ([]byte, error) {
	var m struct {
		CSSContentSize struct{ Width, Height float64 } `json:"cssContentSize"`
	}
	if err := p.Call(ctx, "Page.getLayoutMetrics", nil, &m); err != nil {
		return nil, err
	}
	var shot struct {
		Data string `json:"data"`
	}
	err := p.Call(ctx, "Page.captureScreenshot", map[string]any{
		"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": max(m.CSSContentSize.Width, 1), "height": max(m.CSSContentSize.Height, 1), "scale": 1},
	}, &shot)
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(shot.Data)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex // guards b
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
