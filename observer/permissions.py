"""The Approvers group and the permissions it grants; used by a migration and by ``createapprover``."""

APPROVERS_GROUP = "Approvers"

# (app_label, model, codename, name): deciding, plus viewing what is decided, in the admin and on /observer/.
APPROVER_PERMISSIONS = (
    ("observer", "approval", "decide_approval", "Can approve, reject, answer or cancel approvals"),
    ("observer", "approval", "view_approval", "Can view approval"),
    ("observer", "approvalhistory", "view_approvalhistory", "Can view approval history"),
)


def ensure_approvers_group(group_model, permission_model, content_type_model):
    """Create the Approvers group with its permissions where missing, and return the group.

    It takes the model classes so a migration can pass its historical models. Permissions are
    created here too, because Django adds them only after the last migration of a run.
    """
    group, _ = group_model.objects.get_or_create(name=APPROVERS_GROUP)
    for app_label, model, codename, name in APPROVER_PERMISSIONS:
        content_type, _ = content_type_model.objects.get_or_create(app_label=app_label, model=model)
        permission, _ = permission_model.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
        group.permissions.add(permission)
    return group
