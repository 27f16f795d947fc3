package admin

// STUB, for branch i19-adminsrc only: the cost clients are written on
// another branch (admin/costs*.go, with this exact API). The lead deletes
// this file when merging; until then every Costs call fails, so that the
// poller's budgets are built and tested against the API alone.

import (
	"context"
	"errors"
	"time"
)

// Cost is the spend of one project in one currency over a period.
type Cost struct {
	Project, Currency string
	Amount            float64
}

// CostResult is what one Costs call read.
type CostResult struct {
	Costs []Cost
	Pages int
}

var errCostsStub = errors.New("admin: costs: not built on this branch (stub)")

// Costs is a stub: see the top of this file.
func (o *OpenAI) Costs(ctx context.Context, since time.Time) (CostResult, error) {
	return CostResult{}, &Error{API: "openai costs", Page: 1, Reason: "not built on this branch (stub)", Err: errCostsStub}
}

// Costs is a stub: see the top of this file.
func (a *Anthropic) Costs(ctx context.Context, since time.Time) (CostResult, error) {
	return CostResult{}, &Error{API: "anthropic cost report", Page: 1, Reason: "not built on this branch (stub)", Err: errCostsStub}
}
