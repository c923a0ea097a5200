-- The console (GET /console) and the order list's keyset pagination.
--
-- The list is ordered newest first with the order id breaking ties, and pages with
-- `(created_at, order_id) < (cursor)`: both indexes end in order_id so that comparison is an index
-- condition and a page is one short index scan, however deep. They supersede the two listing
-- indexes of 0001 (same leading columns), which are dropped so every saga write still updates
-- the same number of indexes.
create index sagas_created_id on sagas (created_at desc, order_id desc);
create index sagas_status_created_id on sagas (status, created_at desc, order_id desc);
drop index sagas_created;
drop index sagas_by_status_created;

-- Sagas finished in the last seconds, by outcome (the console's completed/compensated/failed
-- per second). Partial: a saga in flight has no entry, so the index only grows with finished
-- sagas, and the status column lets the count be answered from the index.
create index sagas_finished on sagas (finished_at, status) where finished_at is not null;
