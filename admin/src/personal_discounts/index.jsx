// Personal discounts: one per user; set (create or replace) and remove.
import React from 'react';
import {
    List, Datagrid, TextField, NumberField, Create, SimpleForm, TextInput, NumberInput,
    DateTimeInput, required, DeleteWithConfirmButton,
} from 'react-admin';
import { DateTimeField } from '../common/format';
import { exportForSpreadsheets } from '../common/exporter';

export const PersonalDiscountList = () => (
    <List sort={{ field: 'updated_at', order: 'DESC' }} filters={[<TextInput key="u" source="user_id" alwaysOn />]} exporter={exportForSpreadsheets}>
        <Datagrid bulkActionButtons={false}>
            <TextField source="user_id" />
            <NumberField source="percent" />
            <DateTimeField source="valid_until" />
            <DateTimeField source="updated_at" />
            <DeleteWithConfirmButton mutationMode="pessimistic" />
        </Datagrid>
    </List>
);

export const PersonalDiscountCreate = () => (
    <Create redirect="list">
        <SimpleForm>
            <TextInput source="user_id" validate={required()} />
            <NumberInput source="percent" validate={required()} />
            <DateTimeInput source="valid_until" />
        </SimpleForm>
    </Create>
);

export default { list: PersonalDiscountList, create: PersonalDiscountCreate };
