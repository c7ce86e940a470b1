// Delivery: dead outbox messages with their last error; retry (requeue) or
// discard, each behind a confirmation.
import React from 'react';
import { List, Datagrid, TextField, NumberField, useRecordContext } from 'react-admin';
import ActionButton from '../common/ActionButton';
import { DateTimeField, JsonField } from '../common/format';
import { rpc } from '../providers/httpClient';
import { exportForSpreadsheets } from '../common/exporter';

const RowActions = () => {
    const record = useRecordContext();
    if (!record) return null;
    return (
        <span onClick={e => e.stopPropagation()}>
            <ActionButton label="billing.delivery.retry" title="billing.delivery.retry_title"
                content="billing.delivery.retry_content"
                run={() => rpc('outbox_retry_dead', { ids: [record.id] })} />
            <ActionButton label="billing.delivery.discard" title="billing.delivery.discard_title"
                content="billing.delivery.discard_content"
                run={() => rpc('outbox_discard_dead', { ids: [record.id] })} />
        </span>
    );
};

export const DeadList = () => (
    <List sort={{ field: 'id', order: 'DESC' }} exporter={exportForSpreadsheets}>
        <Datagrid bulkActionButtons={false}>
            <NumberField source="id" />
            <TextField source="kind" />
            <JsonField source="payload" />
            <NumberField source="attempts" />
            <TextField source="last_error" />
            <DateTimeField source="created_at" />
            <RowActions />
        </Datagrid>
    </List>
);

export default { list: DeadList };
