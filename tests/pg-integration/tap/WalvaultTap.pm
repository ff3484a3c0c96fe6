# WalvaultTap: PostgreSQL's own TAP tests with walvault in place of `cp`.
#
# Loaded into each test script (prove --exec 'perl -MWalvaultTap'), after PostgreSQL::Test::Cluster,
# it redefines the two methods of PostgreSQL::Test::Cluster that write archive_command and
# restore_command (15.18's enable_archiving and enable_restoring), and nothing else: a node's
# archive_dir becomes a file:// walvault repository, archive_command runs wal-push and
# restore_command runs wal-fetch, built by cargo (WALVAULT_TAP_BIN). recovery.signal and
# standby.signal are placed as upstream does. Lines of a test that read or write the archive
# directory as flat `cp` files are adapted by tests/pg-integration/tap/recovery.patch, which uses
# the helpers below.
package WalvaultTap;

use strict;
use warnings;

use PostgreSQL::Test::Cluster;

my $bin = $ENV{WALVAULT_TAP_BIN}
  or die "WalvaultTap: WALVAULT_TAP_BIN (the directory of wal-push and wal-fetch) is not set";
-x "$bin/wal-push" && -x "$bin/wal-fetch"
  or die "WalvaultTap: no executable wal-push and wal-fetch in $bin";

# The repository URL of a node's archive directory.
sub repo_url
{
	my ($node) = @_;
	return 'file://' . $node->archive_dir;
}

# wal-push of %p (or of $path) into $node's repository, as a shell command.
sub wal_push_command
{
	my ($node, $path) = @_;
	$path = '"%p"' unless defined $path;
	return qq{"$bin/wal-push" --repo "} . repo_url($node) . qq{" $path};
}

# wal-fetch of %f into %p from $node's repository, as a shell command.
sub wal_fetch_command
{
	my ($node) = @_;
	return qq{"$bin/wal-fetch" --repo "} . repo_url($node) . qq{" "%f" "%p"};
}

# Archives one WAL file into $node's repository now (in place of copying it into archive_dir).
sub push_file
{
	my ($node, $path) = @_;
	PostgreSQL::Test::Utils::system_or_bail("$bin/wal-push", '--repo', repo_url($node), $path);
	return;
}

no warnings 'redefine';

*PostgreSQL::Test::Cluster::enable_archiving = sub {
	my ($self) = @_;
	my $name = $self->name;
	my $command = wal_push_command($self);

	print "### Enabling WAL archiving (walvault) for node \"$name\"\n";
	$self->append_conf(
		'postgresql.conf', qq(
archive_mode = on
archive_command = '$command'
));
	return;
};

*PostgreSQL::Test::Cluster::enable_restoring = sub {
	my ($self, $root_node, $standby) = @_;
	my $name = $self->name;
	my $command = wal_fetch_command($root_node);

	print "### Enabling WAL restore (walvault) for node \"$name\"\n";
	$self->append_conf(
		$self->_recovery_file, qq(
restore_command = '$command'
));
	if ($standby)
	{
		$self->set_standby_mode();
	}
	else
	{
		$self->set_recovery_mode();
	}
	return;
};

1;
