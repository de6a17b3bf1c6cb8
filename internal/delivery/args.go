package delivery

// Kind is the River job kind of a Stripe event to deliver.
const Kind = "stripe_event"

// EventArgs is one Stripe event to deliver, as stored in the queue.
type EventArgs struct {
	// EventID is Stripe's event id, unique in the queue: a redelivery of the
	// same event finds the job already there.
	EventID string `json:"event_id" river:"unique"`
	// Type is the event type, for the events list and the log lines.
	Type string `json:"type"`
	// Body is the raw event as Stripe signed it. It is base64 in the job's JSON,
	// which keeps it byte for byte: PostgreSQL's jsonb would reorder and
	// respace a JSON value.
	Body []byte `json:"body"`
	// RequestID is the X-Request-ID of the request that queued the event,
	// passed on to Next.js with every attempt.
	RequestID string `json:"request_id,omitempty"`
	// Traceparent is the W3C trace context of that request, when tracing is on.
	Traceparent string `json:"traceparent,omitempty"`
}

// Kind returns the job kind.
func (EventArgs) Kind() string { return Kind }
