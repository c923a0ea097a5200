-- Inventory: products with stock, and one reservation row per order (the step ledger).
create table products (
    sku          text primary key,
    name         text    not null,
    price_cents  bigint  not null check (price_cents >= 0),
    available    integer not null check (available >= 0),
    reserved     integer not null default 0 check (reserved >= 0)
);

-- Ledger columns are shared by every participant (see shared/src/ledger.rs); the typed columns
-- after them are derived from the stored JSON so audits can query them.
create table reservations (
    order_id        uuid primary key,
    state           text        not null check (state in ('done', 'compensated')),
    tombstone       boolean     not null default false,
    request         jsonb,
    response        jsonb,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    compensated_at  timestamptz,
    total_cents     bigint generated always as ((response ->> 'total_cents')::bigint) stored
);

-- Demo seed data (documented in README.md).
insert into products (sku, name, price_cents, available) values
    ('WIDGET-1',  'Widget',             1299, 1000),
    ('GADGET-1',  'Gadget',             4999,  500),
    ('GIZMO-1',   'Gizmo',              2500,  200),
    ('RARE-1',    'Rare collectible',  99900,    3),
    ('SOLDOUT-1', 'Sold-out item',       999,    0);
