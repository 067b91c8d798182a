package job

// Reasons a worker itself gives in a dead letter's resetq.reason (AttrReason),
// beside Cognito's own error codes (UserNotFoundException, ...). The DLQ
// tools filter and count by them.
const (
	ReasonInvalidJob        = "invalid_job"        // the body is not a valid AdminResetUserPassword request
	ReasonAttemptsExhausted = "attempts_exhausted" // failed Policy.MaxAttempts times
	ReasonPoolNotAllowed    = "pool_not_allowed"   // its pool is not in --allowed-pools
	ReasonBadSignature      = "bad_signature"      // unsigned, or signed with no known key, or changed since
	ReasonCircuitOpen       = "circuit_open"       // deferred past --max-deferral by a circuit whose error has no code of its own
	ReasonLedgerUnavailable = "ledger_unavailable" // deferred past --max-deferral: the ledger could not be reached to claim the user
	ReasonAssumeRoleDenied  = "assume_role_denied" // deferred past --max-deferral: the pool's role (--pool-roles) could not be assumed
)
