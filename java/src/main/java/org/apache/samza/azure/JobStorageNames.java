package org.apache.samza.azure;

import org.apache.samza.azure.jni.Native;
import org.apache.samza.azure.jni.PayloadLayout;
import org.apache.samza.azure.jni.Payloads;

/**
 * Where a job's state lives in its storage account, by the same rule as the coordinator reads its
 * config; and the operator tool that prints it: {@code java -cp <our jar>:<samza and slf4j jars>
 * org.apache.samza.azure.JobStorageNames <job.name> [job.id]}, to inspect a job's state or to
 * remove it (see docs/operations.md). Makes no request.
 */
public final class JobStorageNames {
  /** The job's blob container. */
  public final String container;

  /** The blob in {@link #container} holding the JobModel document and the leader lease. */
  public final String jobModelBlob;

  /** The membership table (heartbeats, notifications). */
  public final String membershipTable;

  /** The checkpoint table. */
  public final String checkpointTable;

  private JobStorageNames(String[] names) {
    PayloadLayout l = Payloads.JOB_STORAGE_NAMES;
    l.check(names.length);
    container = names[l.index("container")];
    jobModelBlob = names[l.index("job_model_blob")];
    membershipTable = names[l.index("table")];
    checkpointTable = names[l.index("checkpoint_table")];
  }

  /**
   * The names of the job {@code jobName}; {@code jobId} null for a config without {@code job.id}.
   * Native applies the same default and checks as the coordinator, so these cannot name other
   * storage than the job uses.
   */
  public static JobStorageNames of(String jobName, String jobId) {
    return new JobStorageNames(Native.jobStorageNames(jobName, jobId));
  }

  public static void main(String[] args) {
    if (args.length < 1 || args.length > 2) {
      System.err.println("usage: JobStorageNames <job.name> [job.id (Samza's default 1)]");
      System.exit(2);
    }
    JobStorageNames names = of(args[0], args.length > 1 ? args[1] : null);
    System.out.println(
        "container="
            + names.container
            + "   (blob "
            + names.jobModelBlob
            + ": JobModel document, leader lease)");
    System.out.println("membershipTable=" + names.membershipTable);
    System.out.println("checkpointTable=" + names.checkpointTable);
  }
}
