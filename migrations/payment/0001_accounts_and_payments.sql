-- Payment: customer accounts with balances, and one payment row per order (the step ledger).
create table accounts (
    customer_id     text primary key,
    balance_cents   bigint  not null check (balance_cents >= 0),
    -- A demo switch: this customer's card is always declined, whatever the balance.
    always_decline  boolean not null default false
);

create table payments (
    order_id        uuid primary key,
    state           text        not null check (state in ('done', 'compensated')),
    tombstone       boolean     not null default false,
    request         jsonb,
    response        jsonb,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    compensated_at  timestamptz,
    customer_id     text   generated always as (request ->> 'customer_id') stored,
    amount_cents    bigint generated always as ((request ->> 'amount_cents')::bigint) stored
);

-- Demo seed data (documented in README.md).
insert into accounts (customer_id, balance_cents, always_decline) values
    ('alice',     1000000, false),
    ('bob',        250000, false),
    ('carol',        2000, false),
    ('dave',      1000000, true),
    ('loadtest', 1000000000000000, false);
