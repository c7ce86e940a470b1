// Payments: a list with filters, a detail page with the price breakdown and
// the event history, and the actions an operator may take (the server checks
// the refund window and the state machine).
import React, { useState } from 'react';
import {
    List, Datagrid, TextField, NumberField, Show, SimpleShowLayout, TextInput, SelectInput,
    DateTimeInput, ReferenceManyField, useRecordContext, TopToolbar, useTranslate, Labeled, FunctionField,
    BooleanInput,
} from 'react-admin';
import { TextField as MuiTextField, Grid } from '@mui/material';
import ActionButton from '../common/ActionButton';
import { DateTimeField, MoneyField } from '../common/format';
import { exportForSpreadsheets } from '../common/exporter';
import { rpc } from '../providers/httpClient';
import { RenewalCharges } from '../renewals';

const STATUSES = ['invoiced', 'pending', 'paid', 'canceled', 'expired', 'failed', 'refund_pending', 'refunded']
    .map(id => ({ id, name: `billing.status.${id}` }));

const filters = [
    <SelectInput key="status" source="status" choices={STATUSES} alwaysOn />,
    <TextInput key="email" source="email" alwaysOn />,
    <TextInput key="user_id" source="user_id" />,
    <TextInput key="tariff_code" source="tariff_code" />,
    <TextInput key="promo_code" source="promo_code" />,
    <DateTimeInput key="from" source="created_at@gte" label="billing.payments.created_from" />,
    <DateTimeInput key="to" source="created_at@lt" label="billing.payments.created_to" />,
    // off means no filter (every payment), not "only the purchases"
    <BooleanInput key="automatic" source="automatic" label="billing.payments.automatic_only" alwaysOn
        parse={v => (v ? true : null)} />,
];

// An automatic charge of auto-renewal and its attempt, as the list marks it.
const AutomaticText = () => {
    const record = useRecordContext();
    const t = useTranslate();
    if (!record || !record.automatic) return null;
    return <span data-automatic={record.renewal_attempt}>{t('billing.payments.automatic_attempt', { attempt: record.renewal_attempt })}</span>;
};

export const PaymentList = () => (
    <List filters={filters} sort={{ field: 'created_at', order: 'DESC' }} perPage={25} exporter={exportForSpreadsheets}>
        <Datagrid rowClick="show" bulkActionButtons={false}>
            <DateTimeField source="created_at" />
            <TextField source="email" />
            <TextField source="tariff_code" />
            <NumberField source="months" />
            <MoneyField source="total" />
            <FunctionField source="status" render={r => <StatusText status={r.status} />} />
            <TextField source="promo_code" />
            <FunctionField source="automatic" sortable={false} render={() => <AutomaticText />} />
        </Datagrid>
    </List>
);

export const StatusText = ({ status }) => {
    const t = useTranslate();
    return <span data-status={status}>{t(`billing.status.${status}`, { _: status })}</span>;
};

const PaymentActions = () => {
    const record = useRecordContext();
    const t = useTranslate();
    const [reason, setReason] = useState('');
    if (!record) return null;
    const open = ['invoiced', 'pending'].includes(record.status);
    return (
        <TopToolbar>
            {record.status === 'paid' && (
                <ActionButton label="billing.payments.refund" title="billing.payments.refund_title"
                    content="billing.payments.refund_content"
                    run={() => rpc('cancel_payment_for', { user_id: record.user_id, payment_id: record.id })} />
            )}
            {open && (
                <ActionButton label="billing.payments.cancel" title="billing.payments.cancel_title"
                    content="billing.payments.cancel_content"
                    run={() => rpc('cancel_payment_for', { user_id: record.user_id, payment_id: record.id })} />
            )}
            {!['paid', 'refund_pending', 'refunded'].includes(record.status) && (
                <ActionButton label="billing.payments.mark_paid" title="billing.payments.mark_paid_title"
                    run={() => rpc('mark_payment_paid', { payment_id: record.id, reason })}>
                    <MuiTextField label={t('billing.payments.reason')} value={reason} fullWidth autoFocus
                        onChange={e => setReason(e.target.value)} sx={{ mt: 1 }} />
                </ActionButton>
            )}
        </TopToolbar>
    );
};

export const PaymentShow = () => (
    <Show actions={<PaymentActions />}>
        <SimpleShowLayout>
            <TextField source="id" />
            <FunctionField source="status" render={r => <StatusText status={r.status} />} />
            <Grid container spacing={2}>
                <Grid><Labeled><TextField source="user_id" /></Labeled></Grid>
                <Grid><Labeled><TextField source="email" /></Labeled></Grid>
                <Grid><Labeled><TextField source="tariff_code" /></Labeled></Grid>
                <Grid><Labeled><TextField source="tariff_title" /></Labeled></Grid>
                <Grid><Labeled><NumberField source="months" /></Labeled></Grid>
            </Grid>
            <Grid container spacing={2}>
                <Grid><Labeled><MoneyField source="monthly_price" /></Labeled></Grid>
                <Grid><Labeled><MoneyField source="list_price" /></Labeled></Grid>
                <Grid><Labeled><NumberField source="personal_percent" /></Labeled></Grid>
                <Grid><Labeled><NumberField source="months_percent" /></Labeled></Grid>
                <Grid><Labeled><NumberField source="promo_percent" /></Labeled></Grid>
                <Grid><Labeled><TextField source="promo_code" /></Labeled></Grid>
                <Grid><Labeled><TextField source="applied" /></Labeled></Grid>
                <Grid><Labeled><MoneyField source="discount" /></Labeled></Grid>
                <Grid><Labeled><MoneyField source="total" /></Labeled></Grid>
                <Grid><Labeled><TextField source="currency" /></Labeled></Grid>
            </Grid>
            <Grid container spacing={2}>
                <Grid><Labeled><DateTimeField source="created_at" /></Labeled></Grid>
                <Grid><Labeled><DateTimeField source="paid_at" /></Labeled></Grid>
                <Grid><Labeled><DateTimeField source="closed_at" /></Labeled></Grid>
                <Grid><Labeled><DateTimeField source="expires_at" /></Labeled></Grid>
                <Grid><Labeled><TextField source="provider_payment_intent" /></Labeled></Grid>
                <Grid><Labeled><TextField source="provider_refund_id" /></Labeled></Grid>
            </Grid>
            <FunctionField label="billing.payments.renewal_attempts" render={r => (r.automatic
                ? <RenewalCharges filter={{ user_id: r.user_id, tariff_code: r.tariff_code, renewal_of: r.renewal_of }} />
                : null)} />
            <ReferenceManyField label="billing.payments.history" reference="admin_payment_events" target="payment_id"
                sort={{ field: 'id', order: 'ASC' }}>
                <Datagrid bulkActionButtons={false}>
                    <DateTimeField source="at" />
                    <TextField source="from_status" />
                    <TextField source="to_status" />
                    <TextField source="source" />
                </Datagrid>
            </ReferenceManyField>
        </SimpleShowLayout>
    </Show>
);

export default { list: PaymentList, show: PaymentShow };
