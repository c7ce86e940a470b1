// Tariffs: list, create, edit title, description and active; change the
// price (its own action, recorded in the price history shown below it).
// Prices are typed and shown in major units of the tariff's currency
// (common/format: the server's decimals); the server receives minor units.
import React, { useState } from 'react';
import {
    List, Datagrid, TextField, BooleanField, Create, Edit, SimpleForm,
    TextInput, BooleanInput, required, ReferenceManyField, useRecordContext, useTranslate,
    Labeled, TopToolbar, ListButton,
} from 'react-admin';
import { TextField as MuiTextField, Typography, Box } from '@mui/material';
import ActionButton from '../common/ActionButton';
import { rpc } from '../providers/httpClient';
import { CurrencyInput, DateTimeField, MoneyField, MoneyInput, toMinorUnits, useFormat } from '../common/format';
import { exportForSpreadsheets } from '../common/exporter';

export const TariffList = () => (
    <List sort={{ field: 'code', order: 'ASC' }} exporter={exportForSpreadsheets}>
        <Datagrid rowClick="edit" bulkActionButtons={false}>
            <TextField source="code" />
            <TextField source="title" />
            <MoneyField source="monthly_price" />
            <BooleanField source="active" />
            <DateTimeField source="updated_at" />
        </Datagrid>
    </List>
);

export const TariffCreate = () => {
    const fmt = useFormat();
    return (
        <Create redirect="edit" transform={data => toMinorUnits(fmt, data, ['monthly_price'])}>
            <SimpleForm>
                <TextInput source="code" validate={required()} helperText="billing.tariffs.code_help" />
                <TextInput source="title" validate={required()} />
                <TextInput source="description" multiline fullWidth />
                <CurrencyInput source="currency" defaultValue="RUB" />
                <MoneyInput source="monthly_price" />
            </SimpleForm>
        </Create>
    );
};

const PriceChange = () => {
    const record = useRecordContext();
    const t = useTranslate();
    const fmt = useFormat();
    const [price, setPrice] = useState('');
    if (!record) return null;
    const typed = price.trim() === '' ? null : fmt.toMinor(price, record.currency);
    const exponent = fmt.exponentOf(record.currency);
    return (
        <Box sx={{ display: 'flex', alignItems: 'flex-start', gap: 2, my: 2 }}>
            <MuiTextField size="small" label={t('billing.tariffs.new_price')} value={price}
                onChange={e => setPrice(e.target.value)} error={!!typed?.error} sx={{ width: 360 }}
                helperText={typed?.error ? t(typed.error, typed.args)
                    : exponent === undefined ? ' '
                        : t('billing.money.input_help', { currency: record.currency, example: fmt.example(exponent) })} />
            <ActionButton label="billing.tariffs.change_price" title="billing.tariffs.change_price"
                content="billing.tariffs.change_price_content" disabled={!typed || !!typed.error}
                run={() => rpc('set_tariff_price', { code: record.code, monthly_price: typed.minor })} />
        </Box>
    );
};

// The history's rows carry no currency: a tariff's currency never changes.
const PriceHistory = ({ currency }) => (
    <Labeled label="billing.tariffs.price_history" fullWidth>
        <ReferenceManyField reference="admin_price_history" target="tariff_id" sort={{ field: 'id', order: 'DESC' }}>
            <Datagrid bulkActionButtons={false}>
                <DateTimeField source="changed_at" />
                <MoneyField source="old_price" currency={currency} />
                <MoneyField source="new_price" currency={currency} />
                <TextField source="changed_by" />
            </Datagrid>
        </ReferenceManyField>
    </Labeled>
);

const PriceSection = () => {
    const t = useTranslate();
    const fmt = useFormat();
    const record = useRecordContext();
    if (!record) return null;
    return (
        <Box sx={{ p: 2 }}>
            <Typography variant="h6" data-price>{t('billing.tariffs.price')}: {fmt.money(record.monthly_price, record.currency)}</Typography>
            <PriceChange />
            <PriceHistory currency={record.currency} />
        </Box>
    );
};

export const TariffEdit = () => (
    <Edit mutationMode="pessimistic" actions={<TopToolbar><ListButton /></TopToolbar>} aside={null}>
        <SimpleForm>
            <TextInput source="code" disabled />
            <TextInput source="title" validate={required()} />
            <TextInput source="description" multiline fullWidth />
            <BooleanInput source="active" />
        </SimpleForm>
        <PriceSection />
    </Edit>
);

export default { list: TariffList, create: TariffCreate, edit: TariffEdit };
