-- Finding a fire's runs (and checking the deferred foreign key) must not scan every run.
CREATE INDEX runs_instance ON runs(trigger_instance_id);
