-- The timeline's rows cost less to append (see docs/performance.md#levers).
--
-- The foreign key to `sagas` goes: every event insert ran its check, a query that locks the
-- saga's row (a WAL record each) and costs as much as a small statement, six times per saga.
-- Each statement that appends events already proves what it asked: the saves append only for
-- the rows their fenced update wrote, the insert only for the row it inserted, `log::append`
-- only for an existing saga; and no saga is ever deleted.
--
-- And one index instead of two: the timeline is read by saga in id order, so (order_id, id) is
-- the key; the index on id alone was never read.
alter table saga_events drop constraint saga_events_order_id_fkey;
alter table saga_events drop constraint saga_events_pkey;
alter table saga_events add primary key (order_id, id);
drop index saga_events_by_order;
