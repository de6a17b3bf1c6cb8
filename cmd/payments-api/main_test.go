package main

import (
	"testing"

	"github.com/acme/payments-api/internal/pgtest"
)

// TestMain removes the throwaway PostgreSQL servers of the durable-mode tests
// once the tests are done.
func TestMain(m *testing.M) { pgtest.Run(m) }
