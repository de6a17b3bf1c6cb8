-- The Stripe Customer of each Clerk user, so that checkout finds it without
-- searching Stripe. A user has one customer and a customer one user.

-- +goose Up
CREATE TABLE customers (
    user_id     text        PRIMARY KEY,
    customer_id text        NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE customers;
