"""Create an approver account, or promote an existing user to approver."""
import getpass
import os

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from observer.permissions import APPROVERS_GROUP, ensure_approvers_group

PASSWORD_ENVIRONMENT_VARIABLE = "APPROVER_PASSWORD"


class Command(BaseCommand):
    help = (
        "Add USER to the Approvers group, creating the account first when it does not exist. Approvers "
        "are staff, so they can also decide in the admin. A new account gets its password from "
        f"--password-from-env ({PASSWORD_ENVIRONMENT_VARIABLE}), a prompt, or none with --no-input."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="Username of the approver.")
        parser.add_argument("--email", default="", help="Email address of a new account.")
        parser.add_argument(
            "--password-from-env",
            action="store_true",
            help=f"Read a new account's password from the {PASSWORD_ENVIRONMENT_VARIABLE} environment variable.",
        )
        parser.add_argument(
            "--no-input",
            action="store_true",
            help="Never prompt; a new account without --password-from-env gets no usable password.",
        )
        parser.add_argument(
            "--no-staff", action="store_true", help="Do not make the user staff (they can then use /observer/ only)."
        )

    def handle(self, *args, username, email, password_from_env, no_input, no_staff, **options):


        user_model = get_user_model()
        group = ensure_approvers_group(Group, Permission, ContentType)
        user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()

        if user is None:
            password = None
            if password_from_env:
                password = os.environ.get(PASSWORD_ENVIRONMENT_VARIABLE)
                if not password:
                    raise CommandError(
                        f"--password-from-env was given but {PASSWORD_ENVIRONMENT_VARIABLE} is empty or unset; "
                        "export it, or leave out the option to be prompted."
                    )
            elif not no_input:
                password = self._prompt_password()
            candidate = user_model(**{user_model.USERNAME_FIELD: username}, email=email)
            if password is not None:
                try:
                    validate_password(password, candidate)
                except ValidationError as exc:
                    raise CommandError(f"The password for {username!r} is invalid: {' '.join(exc.messages)}") from exc
            with transaction.atomic():
                user = user_model._default_manager.create_user(
                    **{user_model.USERNAME_FIELD: username}, email=email, password=password
                )
                if not no_staff:
                    user.is_staff = True
                    user.save(update_fields=["is_staff"])
                user.groups.add(group)
            self.stdout.write(self.style.SUCCESS(f"Created approver {username!r} in the {APPROVERS_GROUP} group."))
            if password is None:
                self.stdout.write(f"{username!r} has no usable password yet; set one with 'manage.py changepassword {username}'.")
            return

        was_member = user.groups.filter(pk=group.pk).exists()
        promoted_to_staff = not no_staff and not user.is_staff
        with transaction.atomic():
            user.groups.add(group)
            if promoted_to_staff:
                user.is_staff = True
                user.save(update_fields=["is_staff"])
        if was_member and not promoted_to_staff:
            self.stdout.write(f"{username!r} is already an approver; nothing changed.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Promoted existing user {username!r} to approver."))

    def _prompt_password(self) -> str:
        try:
            first = getpass.getpass("Password: ")
            second = getpass.getpass("Password (again): ")
        except (EOFError, KeyboardInterrupt) as exc:
            raise CommandError("No password was entered; pass --no-input to create the account without one.") from exc
        if first != second:
            raise CommandError("The two passwords differ; run the command again.")
        if not first:
            raise CommandError("The password is empty; type one, or pass --no-input to create the account without one.")
        return first
