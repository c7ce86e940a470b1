// Users: found by user id or e-mail; one page with everything billing knows
// about a user (subscriptions and access, personal discount, payments).
import React, { useEffect, useState } from 'react';
import {
    List, Datagrid, TextField, Show, SimpleShowLayout, TextInput, ReferenceManyField,
    NumberField, useRecordContext, useTranslate, useNotify, FunctionField, Labeled,
} from 'react-admin';
import { Table, TableBody, TableCell, TableHead, TableRow, Typography } from '@mui/material';
import { rpc } from '../providers/httpClient';
import ActionButton from '../common/ActionButton';
import { DateTimeField, MoneyField, useFormat } from '../common/format';
import { StatusText } from '../payments';
import { RenewalCharges, ReasonText, cardText } from '../renewals';
import { exportForSpreadsheets } from '../common/exporter';

const filters = [
    <TextInput key="email" source="email" alwaysOn />,
    <TextInput key="id" source="id" label="resources.admin_users.fields.id" alwaysOn />,
];

export const UserList = () => (
    <List filters={filters} sort={{ field: 'created_at', order: 'DESC' }} exporter={exportForSpreadsheets}>
        <Datagrid rowClick="show" bulkActionButtons={false}>
            <TextField source="id" />
            <TextField source="email" />
            <DateTimeField source="created_at" />
        </Datagrid>
    </List>
);

const Subscriptions = () => {
    const record = useRecordContext();
    const t = useTranslate();
    const notify = useNotify();
    const fmt = useFormat();
    const [info, setInfo] = useState(null);
    useEffect(() => {
        if (record) rpc('user_payment_info', { user_id: record.id }).then(setInfo).catch(e => notify(e.message, { type: 'error' }));
    }, [record, notify]);
    if (!info) return null;
    const subs = info.subscriptions || [];
    return (
        <Labeled label="billing.users.subscriptions">
            {subs.length === 0 ? <Typography>{t('billing.users.none')}</Typography> : (
                <Table size="small">
                    <TableHead>
                        <TableRow>
                            <TableCell>{t('resources.admin_tariffs.fields.code')}</TableCell>
                            <TableCell>{t('billing.users.status')}</TableCell>
                            <TableCell>{t('billing.users.ends_at')}</TableCell>
                            <TableCell>{t('billing.users.grace_ends_at')}</TableCell>
                            <TableCell>{t('billing.users.access')}</TableCell>
                            <TableCell>{t('billing.renewals.auto_renew')}</TableCell>
                            <TableCell>{t('billing.renewals.reason_label')}</TableCell>
                            <TableCell>{t('billing.renewals.next_charge')}</TableCell>
                            <TableCell>{t('billing.renewals.card')}</TableCell>
                            <TableCell>{t('billing.renewals.failures')}</TableCell>
                        </TableRow>
                    </TableHead>
                    <TableBody>
                        {subs.map(s => (
                            <TableRow key={s.tariff}>
                                <TableCell>{s.tariff}</TableCell>
                                <TableCell>{t(`billing.subscription.${s.status}`, { _: s.status })}</TableCell>
                                <TableCell>{fmt.dateTime(s.ends_at)}</TableCell>
                                <TableCell>{fmt.dateTime(s.grace_ends_at)}</TableCell>
                                <TableCell>{t(s.has_access ? 'billing.common.yes' : 'billing.common.no')}</TableCell>
                                <TableCell data-auto-renew={s.auto_renew ? 'on' : 'off'}>
                                    {t(s.auto_renew ? 'billing.renewals.on' : 'billing.renewals.off')}
                                </TableCell>
                                <TableCell><ReasonText reason={s.auto_renew_reason} /></TableCell>
                                <TableCell>
                                    {s.next_charge_at
                                        ? `${fmt.dateTime(s.next_charge_at)}, ${fmt.money(s.next_charge_total, s.currency)}`
                                        : '—'}
                                </TableCell>
                                <TableCell>{cardText(s)}</TableCell>
                                <TableCell>{fmt.number(s.renew_failures)}</TableCell>
                                <TableCell>
                                    {s.auto_renew && (
                                        <ActionButton label="billing.renewals.switch_off" title="billing.renewals.switch_off_title"
                                            content="billing.renewals.switch_off_content"
                                            run={() => rpc('admin_set_auto_renew', { user_id: record.id, tariff: s.tariff, enabled: false })
                                                .then(() => rpc('user_payment_info', { user_id: record.id }).then(setInfo))} />
                                    )}
                                </TableCell>
                            </TableRow>
                        ))}
                    </TableBody>
                </Table>
            )}
        </Labeled>
    );
};

const UserRenewalCharges = () => {
    const record = useRecordContext();
    return record ? <RenewalCharges filter={{ user_id: record.id }} /> : null;
};

export const UserShow = () => (
    <Show>
        <SimpleShowLayout>
            <TextField source="id" />
            <TextField source="email" />
            <DateTimeField source="created_at" />
            <Subscriptions />
            <Labeled label="billing.renewals.charges">
                <UserRenewalCharges />
            </Labeled>
            <ReferenceManyField label="billing.users.discount" reference="admin_personal_discounts" target="user_id">
                <Datagrid bulkActionButtons={false} empty={<Typography>{'—'}</Typography>}>
                    <NumberField source="percent" />
                    <DateTimeField source="valid_until" />
                </Datagrid>
            </ReferenceManyField>
            <ReferenceManyField label="billing.users.payments" reference="admin_payments" target="user_id"
                sort={{ field: 'created_at', order: 'DESC' }}>
                <Datagrid rowClick={(id) => `/admin_payments/${id}/show`} bulkActionButtons={false}>
                    <DateTimeField source="created_at" />
                    <TextField source="tariff_code" />
                    <NumberField source="months" />
                    <MoneyField source="total" />
                    <FunctionField source="status" render={r => <StatusText status={r.status} />} />
                </Datagrid>
            </ReferenceManyField>
        </SimpleShowLayout>
    </Show>
);

export default { list: UserList, show: UserShow };
