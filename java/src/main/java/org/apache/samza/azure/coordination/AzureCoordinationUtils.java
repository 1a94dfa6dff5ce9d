package org.apache.samza.azure.coordination;

import java.time.Duration;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.samza.azure.coordinator.AzureJobCoordinator;
import org.apache.samza.azure.jni.NativeHandle;
import org.apache.samza.config.Config;
import org.apache.samza.coordinator.ClusterMembership;
import org.apache.samza.coordinator.CoordinationUtils;
import org.apache.samza.coordinator.DistributedLock;
import org.apache.samza.coordinator.Latch;
import org.apache.samza.coordinator.LeaderElector;
import org.apache.samza.coordinator.LeaderElectorListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Samza's CoordinationUtils on Azure Storage for one group of one job: a leader elector and locks
 * on blob leases (15 s, renewed every 5 s; a crashed holder's lease lapses), latches and cluster
 * membership in the job's table. Thread-safe; {@link #close()} releases everything held.
 */
public final class AzureCoordinationUtils implements CoordinationUtils, AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(AzureCoordinationUtils.class);

  private final NativeGroup group;
  private final String participantId;

  public AzureCoordinationUtils(String groupId, String participantId, Config config) {
    Map<String, String> nativeConfig = AzureJobCoordinator.nativeConfig(config);
    this.group = NativeGroup.open(nativeConfig, groupId);
    this.participantId = participantId;
  }

  @Override
  public LeaderElector getLeaderElector() {
    return new Elector();
  }

  @Override
  public Latch getLatch(int size, String latchId) {
    return new Latch() {
      @Override
      public void countDown() {
        group.countDown(latchId, participantId);
      }

      @Override
      public void await(long timeout, TimeUnit unit) throws TimeoutException {
        if (!group.awaitLatch(latchId, size, unit.toMillis(timeout))) {
          throw new TimeoutException(
              "latch " + latchId + " did not reach " + size + " within " + timeout + " " + unit);
        }
      }
    };
  }

  @Override
  public DistributedLock getLock(String lockId) {
    return new Lock(lockId);
  }

  @Override
  public ClusterMembership getClusterMembership() {
    return new Membership();
  }

  @Override
  public void close() {
    group.close();
  }

  /** Leadership of the group: whoever holds the group's "leader" lease. */
  private final class Elector implements LeaderElector {
    private volatile LeaderElectorListener listener;
    private volatile NativeLease lease;
    private volatile boolean leader;

    @Override
    public void setLeaderElectorListener(LeaderElectorListener listener) {
      this.listener = listener;
    }

    @Override
    public synchronized void tryBecomeLeader() {
      if (lease != null) {
        return;
      }
      NativeLease l = group.lease("leader", 1000);
      lease = l;
      Thread t = new Thread(() -> watch(l), "samza-azure-leader-elector");
      t.setDaemon(true);
      t.start();
    }

    private void watch(NativeLease l) {
      try {
        while (true) {
          int state = l.awaitChange(1000);
          if (state == NativeLease.STOPPED) {
            leader = false;
            return;
          }
          boolean now = state == NativeLease.LEADER;
          if (now && !leader) {
            leader = true;
            LeaderElectorListener li = listener;
            if (li != null) {
              li.onBecomingLeader();
            }
          } else if (!now) {
            leader = false;
          }
        }
      } catch (IllegalStateException closed) {
        leader = false;
      }
    }

    @Override
    public synchronized void resignLeadership() {
      NativeLease l = lease;
      lease = null;
      leader = false;
      if (l != null) {
        l.stopAndClose();
      }
    }

    @Override
    public boolean amILeader() {
      return leader;
    }
  }

  /** A lease per lock id; held (and renewed) from lock() until unlock(). */
  private final class Lock implements DistributedLock {
    private final String lockId;
    private NativeLease lease;

    Lock(String lockId) {
      this.lockId = "lock-" + lockId;
    }

    @Override
    public synchronized boolean lock(Duration timeout) {
      if (lease != null) {
        return true;
      }
      NativeLease l = group.lease(lockId, 250);
      if (l.awaitLeader(timeout.toMillis()) == NativeLease.LEADER) {
        lease = l;
        return true;
      }
      l.stopAndClose();
      return false;
    }

    @Override
    public synchronized void unlock() {
      if (lease != null) {
        lease.stopAndClose();
        lease = null;
      }
    }
  }

  /** Rows heartbeated every 2 s; a member silent for 6 s (storage time) no longer counts. */
  private final class Membership implements ClusterMembership {
    private final Map<String, NativeHandle> members =
        new java.util.concurrent.ConcurrentHashMap<>();
    private final AtomicBoolean warned = new AtomicBoolean();

    @Override
    public String registerProcessor() {
      String id = participantId + "-" + UUID.randomUUID();
      members.put(id, group.register(id));
      return id;
    }

    @Override
    public int getNumberOfProcessors() {
      return group.clusterSize();
    }

    @Override
    public void unregisterProcessor(String processorId) {
      NativeHandle member = members.remove(processorId);
      if (member != null) {
        member.close();
      } else if (warned.compareAndSet(false, true)) {
        LOG.info("Unregistering {}, which another instance registered", processorId);
      }
      group.unregister(processorId);
    }
  }
}
