// Tariffs: list, create, edit title, description and active; change the
// price (its own action, recorded in the price history shown below it).
import React, { useState } from 'react';
import {
    List, Datagrid, TextField, NumberField, BooleanField, DateField, Create, Edit, SimpleForm,
    TextInput, NumberInput, BooleanInput, required, ReferenceManyField, useRecordContext, useTranslate,
    Labeled, TopToolbar, ListButton,
} from 'react-admin';
import { TextField as MuiTextField, Typography, Box } from '@mui/material';
import ActionButton from '../common/ActionButton';
import { rpc } from '../providers/httpClient';

export const TariffList = () => (
    <List sort={{ field: 'code', order: 'ASC' }}>
        <Datagrid rowClick="edit" bulkActionButtons={false}>
            <TextField source="code" />
            <TextField source="title" />
            <NumberField source="monthly_price" />
            <TextField source="currency" />
            <BooleanField source="active" />
            <DateField source="updated_at" showTime />
        </Datagrid>
    </List>
);

export const TariffCreate = () => (
    <Create redirect="edit">
        <SimpleForm>
            <TextInput source="code" validate={required()} helperText="billing.tariffs.code_help" />
            <TextInput source="title" validate={required()} />
            <TextInput source="description" multiline fullWidth />
            <NumberInput source="monthly_price" validate={required()} helperText="billing.common.minor_units" />
            <TextInput source="currency" defaultValue="RUB" validate={required()} />
        </SimpleForm>
    </Create>
);

const PriceChange = () => {
    const record = useRecordContext();
    const t = useTranslate();
    const [price, setPrice] = useState('');
    if (!record) return null;
    return (
        <Box sx={{ display: 'flex', alignItems: 'center', gap: 2, my: 2 }}>
            <MuiTextField size="small" type="number" label={t('billing.tariffs.new_price')} value={price}
                onChange={e => setPrice(e.target.value)} />
            <ActionButton label="billing.tariffs.change_price" title="billing.tariffs.change_price"
                content="billing.tariffs.change_price_content" disabled={price === ''}
                run={() => rpc('set_tariff_price', { code: record.code, monthly_price: Number(price) })} />
        </Box>
    );
};

const PriceHistory = () => (
    <Labeled label="billing.tariffs.price_history" fullWidth>
        <ReferenceManyField reference="admin_price_history" target="tariff_id" sort={{ field: 'id', order: 'DESC' }}>
            <Datagrid bulkActionButtons={false}>
                <DateField source="changed_at" showTime />
                <NumberField source="old_price" />
                <NumberField source="new_price" />
                <TextField source="changed_by" />
            </Datagrid>
        </ReferenceManyField>
    </Labeled>
);

const PriceSection = () => {
    const t = useTranslate();
    const record = useRecordContext();
    if (!record) return null;
    return (
        <Box sx={{ p: 2 }}>
            <Typography variant="h6">{t('billing.tariffs.price')}: {record.monthly_price} {record.currency}</Typography>
            <PriceChange />
            <PriceHistory />
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
