-- A product with (practically) unlimited stock for the load tool (`sagactl bench`), so long
-- benchmark runs never hit out-of-stock.
insert into products (sku, name, price_cents, available) values ('LOAD-1', 'Load-test item', 100, 2000000000);
