// Package testkit is what the module's tests, and the bench program, share:
// the provider samples of testdata/, the built exporter started and waited
// on, temporary configs, free loopback addresses and the tools a test needs.
//
// Functions that take a testing.TB fail the test on an error; bench, which
// is a program, calls the forms that return the error.
package testkit
