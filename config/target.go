package config

// TargetID names a target, one key and one model, across reloads: what
// the scheduler, the store of readings and the endpoints look targets up by.
type TargetID struct {
	Key   string
	Model string
}

// ID returns the target's ID.
func (t Target) ID() TargetID { return TargetID{Key: t.Key.Name, Model: t.Model} }

// FingerprintPrefix starts the name under which the proxy records a key
// the config does not have (unknown_keys: fingerprint); no configured key
// name may start with it.
const FingerprintPrefix = "sha256:"
