package auth

// Reason is why a request was not authenticated. It is the reason label of
// payments_api_auth_failures_total, so the set is small and fixed.
type Reason string

// The reasons a token is refused.
const (
	ReasonMissing     Reason = "missing"       // no Authorization header, another scheme, or an empty bearer token
	ReasonOversized   Reason = "oversized"     // token longer than MaxTokenBytes, refused unparsed
	ReasonMalformed   Reason = "malformed"     // not three base64url segments, or undecodable header or claims
	ReasonAlgorithm   Reason = "algorithm"     // alg other than RS256
	ReasonUnknownKey  Reason = "unknown_key"   // no kid, or a kid not in the key set even after a refresh
	ReasonSignature   Reason = "signature"     // signature does not verify with the named key
	ReasonExpired     Reason = "expired"       // exp passed (beyond the skew)
	ReasonNotYetValid Reason = "not_yet_valid" // nbf or iat in the future beyond the skew
	ReasonIssuer      Reason = "issuer"        // iss missing or not exactly the configured issuer
	ReasonAZP         Reason = "azp"           // azp present but not an authorized party
	ReasonSubject     Reason = "subject"       // sub missing or empty
	ReasonPending     Reason = "pending"       // sts = pending: the session is not complete
	ReasonClaims      Reason = "claims"        // exp missing or zero, or a claim of the wrong type
	ReasonUnavailable Reason = "unavailable"   // no verification keys loaded yet (JWKS never fetched)
)

// AllReasons returns every Reason, so that each metric series exists from the start.
func AllReasons() []Reason {
	return []Reason{
		ReasonMissing, ReasonOversized, ReasonMalformed, ReasonAlgorithm, ReasonUnknownKey,
		ReasonSignature, ReasonExpired, ReasonNotYetValid, ReasonIssuer, ReasonAZP,
		ReasonSubject, ReasonPending, ReasonClaims, ReasonUnavailable,
	}
}

// Error is a refused token. Its text is the reason alone: the cause from jwx can
// quote pieces of the token (a JSON syntax error near a claim), and the text of
// this error reaches the access log.
type Error struct {
	Reason Reason
	Err    error // the underlying cause, for errors.Is/As only
}

func (e *Error) Error() string { return "auth: token refused: " + string(e.Reason) }

func (e *Error) Unwrap() error { return e.Err }

func refuse(reason Reason, cause error) *Error { return &Error{Reason: reason, Err: cause} }
