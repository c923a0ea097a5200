-- Room on each page of `sagas` for the new versions of its rows: a saga's row is rewritten at
-- every step, and when no indexed column changes (most steps of a happy saga keep `status` and
-- `next_run_at`) Postgres can put the new version on the same page and skip every index: a HOT
-- update. Without free space on the page it cannot. Applies to pages written from now on.
alter table sagas set (fillfactor = 70);
