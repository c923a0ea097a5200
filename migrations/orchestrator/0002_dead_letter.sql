-- Why a `failed` saga waits for an operator (compensation budget exhausted at a step, or a step
-- refused past the pivot), kept apart from `failure_reason` (why it stopped going forward) so
-- an operator's retry clears the one and keeps the other.
alter table sagas add column dead_letter text;
