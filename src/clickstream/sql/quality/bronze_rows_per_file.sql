-- Bronze's rows per raw file and batch, and the source each was read as: the bronze side of the ledger.
select source_file, batch_id, source_name, count(*) as n_rows
from ledger_bronze
group by source_file, batch_id, source_name
