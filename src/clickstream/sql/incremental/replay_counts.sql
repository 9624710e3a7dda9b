-- How many supplied sessions a batch sessionizes again, and how many of those hold published events from then on.
select count(*) as replayed, count(case when reads_published then 1 end) as reading_published
from {{ replay_table }}
