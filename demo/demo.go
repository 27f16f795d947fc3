// Package demo runs simulators of several providers on loopback with a few
// keys and changing traffic, and gives the config that probes them: live
// metrics with no API key.
package demo

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// Simulator keys. They are valid only inside the demo's simulator.
const (
	ProdKey      = "sk-demo-prod-0000000000000000"
	TrialKey     = "sk-demo-trial-000000000000000"
	RevokedKey   = "sk-demo-revoked-0000000000000"
	AnthropicKey = "sk-ant-demo-00000000000000000"
	RouterKey    = "sk-or-v1-demo-000000000000000"
	AzureKey     = "azure-demo-000000000000000000"
	DeepSeekKey  = "sk-deepseek-demo-000000000000"
	// AdminKey is the Anthropic organization's admin key: its Rate Limits
	// API lists the limits of models no demo key probes too.
	AdminKey = "sk-ant-admin-demo-00000000000"
)

// Each simulator answers under its own prefix of one listener.
const configTemplate = `probe:
  interval: 15s
  timeout: 5s
admin:
  - name: claude-org
    provider: anthropic
    admin_key: %[10]s
    base_url: %[1]s/anthropic
keys:
  - name: prod
    provider: cerebras
    api_key: %[2]s
    base_url: %[1]s/cerebras/v1
    models: [llama3.1-8b, llama-3.3-70b]
    labels: {team: search}
  - name: trial
    provider: groq
    api_key: %[3]s
    base_url: %[1]s/groq/openai/v1
    models: [llama-3.1-8b-instant]
    labels: {team: research}
  - name: assistant
    provider: anthropic
    api_key: %[5]s
    base_url: %[1]s/anthropic
    labels: {team: support}
    admin: claude-org
  - name: router
    provider: openrouter
    api_key: %[6]s
    base_url: %[1]s/openrouter/api/v1
    labels: {team: research}
  - name: revoked
    provider: openai
    api_key: %[4]s
    base_url: %[1]s/openai/v1
  - name: ptu
    provider: azure_openai
    api_key: %[8]s
    base_url: %[1]s/azure
    models: [gpt-4o-mini]
    labels: {team: search}
  - name: wallet
    provider: deepseek
    api_key: %[9]s
    base_url: %[1]s/deepseek
    labels: {team: research}
proxy:
  listen_address: %[7]s
  routes:
    - {path_prefix: /anthropic/, upstream: %[1]s/anthropic, provider: anthropic}
`

// Demo is a running simulator and the traffic that drains it.
type Demo struct {
	URL       string // base URL of the simulated API
	ProxyAddr string // where the exporter's proxy listens; the demo's assistant sends its requests there
	Config    []byte // exporter config that probes it
	server    *http.Server
	cancel    context.CancelFunc
	done      chan struct{}
}

// simulators are the demo's providers, each with its keys.
type simulators struct {
	cerebras, groq, anthropic, openrouter, openai, azure, deepseek *simulator.Simulator
}

func newSimulators() simulators {
	s := simulators{
		cerebras:   simulator.NewDialect(simulator.Cerebras, "llama3.1-8b", "llama-3.3-70b"),
		groq:       simulator.NewDialect(simulator.Groq, "llama-3.1-8b-instant"),
		anthropic:  simulator.NewDialect(simulator.Anthropic, "claude-haiku-4-5"),
		openrouter: simulator.NewDialect(simulator.OpenRouter),
		openai:     simulator.NewDialect(simulator.OpenAI, "gpt-4o-mini"),
		azure:      simulator.NewDialect(simulator.AzureOpenAI, "gpt-4o-mini"),
		deepseek:   simulator.NewDialect(simulator.DeepSeek),
	}
	for _, sim := range []*simulator.Simulator{s.cerebras, s.groq, s.anthropic, s.openrouter, s.openai, s.azure, s.deepseek} {
		sim.SetLatency(80 * time.Millisecond)
	}
	s.cerebras.AddKey(ProdKey, simulator.Limits{
		"requests": {"minute": 1000, "hour": 50000, "day": 1000000},
		"tokens":   {"minute": 1000000, "hour": 30000000, "day": 500000000},
	})
	s.groq.AddKey(TrialKey, simulator.Limits{"requests": {"day": 14400}, "tokens": {"minute": 6000}})
	s.anthropic.AddKey(AnthropicKey, simulator.Limits{
		"requests": {"minute": 50}, "tokens": {"minute": 50000},
		"input_tokens": {"minute": 40000}, "output_tokens": {"minute": 10000},
	})
	s.anthropic.SetAdminLimits(AdminKey, "",
		simulator.AdminLimit{Models: []string{"claude-haiku-4-5"}, Values: map[string]float64{
			"requests_per_minute": 50, "input_tokens_per_minute": 40000, "output_tokens_per_minute": 10000}},
		simulator.AdminLimit{Models: []string{"claude-sonnet-4-5"}, Values: map[string]float64{
			"requests_per_minute": 50, "input_tokens_per_minute": 30000, "output_tokens_per_minute": 8000}},
		simulator.AdminLimit{Group: "batch", Values: map[string]float64{"requests_per_minute": 50}},
	)
	s.openrouter.AddKey(RouterKey, simulator.Limits{"credits": {"month": 25}, "free_model_requests": {"day": 1000}})
	// A provisioned deployment: remaining requests and tokens, and the
	// share of its capacity in use.
	s.azure.AddKey(AzureKey, simulator.Limits{
		"requests": {"minute": 600}, "tokens": {"minute": 100000}, "deployment": {"minute": 100000},
	})
	s.deepseek.AddKey(DeepSeekKey, nil)
	s.deepseek.SetBalance(DeepSeekKey, deepSeekBalance(0))
	// RevokedKey is never added: its probes get 401.
	return s
}

// deepSeekBalance is the demo wallet's money after spending spent dollars.
func deepSeekBalance(spent float64) simulator.Balance {
	left := max(20-spent, 0)
	return simulator.Balance{Available: left > 0, Currencies: []simulator.CurrencyBalance{{Currency: "USD", Granted: 0, ToppedUp: left}}}
}

func (s simulators) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/cerebras/", s.cerebras)
	mux.Handle("/groq/", s.groq)
	mux.Handle("/anthropic/", s.anthropic)
	mux.Handle("/openrouter/", s.openrouter)
	mux.Handle("/openai/", s.openai)
	mux.Handle("/azure/", s.azure)
	mux.Handle("/deepseek/", s.deepseek)
	return mux
}

// Start serves the simulators on a loopback port and starts the traffic.
func Start() (*Demo, error) {
	sims := newSimulators()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: starting the simulator: %w", err)
	}
	url := "http://" + listener.Addr().String()
	proxyAddr, err := freeLoopbackAddr()
	if err != nil {
		listener.Close()
		return nil, fmt.Errorf("demo: choosing the proxy's port: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Demo{
		URL:       url,
		ProxyAddr: proxyAddr,
		Config:    fmt.Appendf(nil, configTemplate, url, ProdKey, TrialKey, RevokedKey, AnthropicKey, RouterKey, proxyAddr, AzureKey, DeepSeekKey, AdminKey),
		server:    &http.Server{Handler: sims.handler(), ReadHeaderTimeout: 5 * time.Second},
		cancel:    cancel,
		done:      make(chan struct{}),
	}
	go func() { _ = d.server.Serve(listener) }()
	go func() {
		defer close(d.done)
		traffic(ctx, sims, "http://"+proxyAddr+"/anthropic/v1/messages")
	}()
	return d, nil
}

// ask sends one request as the demo's assistant application does, through
// the proxy; before the proxy listens it fails, and nothing is lost.
func ask(ctx context.Context, url string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(
		`{"model":"claude-haiku-4-5","max_tokens":64,"messages":[{"role":"user","content":"Summarise this support ticket, please."}]}`))
	if err != nil {
		return
	}
	req.Header.Set("x-api-key", AnthropicKey)
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("content-type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// freeLoopbackAddr returns a loopback address with a port free right now.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Load parses the demo config; it suits config.NewReloader.
func (d *Demo) Load() (*config.Config, error) {
	return config.Parse(d.Config, "<demo>")
}

// Stop ends the traffic and the simulator.
func (d *Demo) Stop() {
	d.cancel()
	<-d.done
	_ = d.server.Close()
}

// traffic drains the buckets as real applications would: prod in a slow
// wave, trial in bursts that empty its minute of tokens now and then, the
// assistant steadily, the router's credits and the wallet's dollars
// slowly, and the provisioned deployment in the same wave as prod.
func traffic(ctx context.Context, s simulators, assistantURL string) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			t := now.Sub(start).Seconds()
			wave := 1 + math.Sin(2*math.Pi*t/600)
			s.cerebras.Consume(ProdKey, "llama3.1-8b", 6*wave, 9000*wave*(0.8+0.4*rand.Float64()))
			s.cerebras.Consume(ProdKey, "llama-3.3-70b", 2*wave, 4000*wave*(0.8+0.4*rand.Float64()))
			if math.Mod(t, 300) < 60 { // one busy minute in five
				s.groq.Consume(TrialKey, "llama-3.1-8b-instant", 1, 200*rand.Float64())
			}
			// The assistant's requests go through the exporter's proxy,
			// which reads their headers: its key needs no probes.
			if math.Mod(t, 2) < 1 {
				go ask(ctx, assistantURL)
			}
			s.openrouter.Consume(RouterKey, "", 0.2*rand.Float64(), 0.002*wave)
			s.azure.Consume(AzureKey, "gpt-4o-mini", 3*wave, 1200*wave)
			s.deepseek.SetBalance(DeepSeekKey, deepSeekBalance(t/600))
		}
	}
}
