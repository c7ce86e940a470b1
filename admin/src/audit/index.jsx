// The audit log: filters by admin, action, target and date; each row opens to
// show the row before and after side by side, with the changed fields marked.
import React from 'react';
import { List, Datagrid, TextField, TextInput, DateTimeInput, useRecordContext, useTranslate } from 'react-admin';
import { Table, TableBody, TableCell, TableHead, TableRow } from '@mui/material';
import { DateTimeField, useFormat } from '../common/format';
import { exportForSpreadsheets } from '../common/exporter';

const filters = [
    <TextInput key="actor_name" source="actor_name" alwaysOn />,
    <TextInput key="action" source="action" alwaysOn />,
    <TextInput key="target" source="target" />,
    <DateTimeInput key="from" source="at@gte" label="billing.audit.from" />,
    <DateTimeInput key="to" source="at@lt" label="billing.audit.to" />,
];

// (compares the values as the server wrote them; shows them formatted)
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

const BeforeAfter = () => {
    const record = useRecordContext();
    const t = useTranslate();
    const fmt = useFormat();
    if (!record) return null;
    const before = record.before || {};
    const after = record.after || {};
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return (
        <Table size="small">
            <TableHead>
                <TableRow>
                    <TableCell>{t('billing.audit.field')}</TableCell>
                    <TableCell>{t('billing.audit.before')}</TableCell>
                    <TableCell>{t('billing.audit.after')}</TableCell>
                </TableRow>
            </TableHead>
            <TableBody>
                {keys.map(k => {
                    const changed = !same(before[k], after[k]);
                    const sx = changed ? { backgroundColor: 'rgba(255, 193, 7, 0.25)', fontWeight: 'bold' } : {};
                    return (
                        <TableRow key={k} data-changed={changed ? 'yes' : 'no'}>
                            <TableCell sx={sx}>{k}{changed ? ` (${t('billing.audit.changed')})` : ''}</TableCell>
                            <TableCell sx={sx}>{record.before ? fmt.value(before[k], k, before) : ''}</TableCell>
                            <TableCell sx={sx}>{record.after ? fmt.value(after[k], k, after) : ''}</TableCell>
                        </TableRow>
                    );
                })}
            </TableBody>
        </Table>
    );
};

export const AuditList = () => (
    <List filters={filters} sort={{ field: 'id', order: 'DESC' }} perPage={25} exporter={exportForSpreadsheets}>
        <Datagrid expand={<BeforeAfter />} bulkActionButtons={false} rowClick="expand">
            <DateTimeField source="at" />
            <TextField source="actor_name" />
            <TextField source="action" />
            <TextField source="target" />
        </Datagrid>
    </List>
);

export default { list: AuditList };
