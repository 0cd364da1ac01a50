-- Housekeeping deletes processed events by age (pinstack_kit.worker.Housekeeping).
CREATE INDEX processed_events_age_idx ON processed_events (processed_at);
