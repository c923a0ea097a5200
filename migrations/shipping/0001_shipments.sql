-- Shipping: one shipment row per order (the step ledger), and the countries no carrier serves.
create table shipments (
    order_id         uuid primary key,
    state            text        not null check (state in ('done', 'compensated')),
    tombstone        boolean     not null default false,
    request          jsonb,
    response         jsonb,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    compensated_at   timestamptz,
    tracking_number  text generated always as (response ->> 'tracking_number') stored,
    country          text generated always as (request -> 'address' ->> 'country') stored
);

create table undeliverable_countries (
    country  text primary key check (country ~ '^[A-Z]{2}$'),
    reason   text not null
);

-- Demo seed data (documented in README.md).
insert into undeliverable_countries (country, reason) values
    ('AQ', 'no carrier delivers to Antarctica');
