-- Products for the load tool (`sagactl load`), so orders can spread over many rows (realistic
-- contention) or all want one (`--keys hot`): `LOAD-0001` … `LOAD-0500`, each with stock for
-- about a billion orders. 500 rather than more because `GET /products` lists at most 1,000 rows
-- and the demo products must stay in that list. `LOAD-1` (migration 0002) stays as it was.
insert into products (sku, name, price_cents, available)
select format('LOAD-%s', lpad(n::text, 4, '0')), format('Load-test item %s', n), 100, 1000000000
from generate_series(1, 500) as n;

-- Never in stock: the load tool's out-of-stock failures (409). Nothing may restock it.
insert into products (sku, name, price_cents, available) values
    ('LOAD-SOLDOUT', 'Load-test item, never in stock', 100, 0);
