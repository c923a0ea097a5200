-- Customers for the load tool (`sagactl load`): `load-0001` … `load-1000`, each able to pay for
-- about ten trillion load orders, so long runs never run out of money. `loadtest` (migration
-- 0001) stays as it was.
insert into accounts (customer_id, balance_cents)
select format('load-%s', lpad(n::text, 4, '0')), 1000000000000000
from generate_series(1, 1000) as n;

-- An empty account: every payment it is asked for is declined (402), the load tool's payment
-- failures. Its balance never changes, because a declined payment takes nothing.
insert into accounts (customer_id, balance_cents) values ('load-declined', 0);
